"""Partial protection: a training set where only a fraction of the images are protected.

Which images are protected is a pure function of ``(seed, id)`` (see
:mod:`raypriv.hashing`), so the two corpora are filtered independently and unioned,
with no join or shuffle: a row id's protected copy is kept when ``u(id) < fraction``,
its clean copy when ``u(id) >= fraction``; every id appears exactly once.
"""
from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import numpy as np

from raypriv.errors import ConfigError, DataError
from raypriv.hashing import id_uniform

if TYPE_CHECKING:  # pragma: no cover
    from raypriv.data.corpus import Corpus

SALT = "partial"


def protected_mask(ids, *, fraction: float, seed: int) -> np.ndarray:
    """Boolean mask: which ``ids`` are protected in a ``fraction`` mix under ``seed``."""
    return id_uniform(ids, seed=seed, salt=SALT) < fraction


def _keep(batch: dict, *, fraction: float, seed: int, protected: bool) -> dict:
    mask = protected_mask(batch["id"], fraction=fraction, seed=seed)
    if not protected:
        mask = ~mask
    return {k: np.asarray(v)[mask] for k, v in batch.items()}


def mix_partial(clean: "Corpus", protected: "Corpus", fraction: float, *, seed: int = 0) -> "Corpus":
    """A corpus with the protected version of ``fraction`` of the ids and the clean rest.

    Both corpora must describe the same rows (same row count, image shape and classes);
    ``fraction`` 0 gives the clean set, 1 the protected one. The result's ``info`` is the
    clean corpus's with ``source`` recording the mix.
    """
    if not 0 <= fraction <= 1:
        raise ConfigError("fraction", f"must be in [0, 1], got {fraction}")
    _check_compatible(clean, protected)
    kw = {"fraction": float(fraction), "seed": int(seed)}
    prot = protected.ds.map_batches(_keep, fn_kwargs={**kw, "protected": True}, batch_format="numpy")
    rest = clean.ds.map_batches(_keep, fn_kwargs={**kw, "protected": False}, batch_format="numpy")
    info = dataclasses.replace(
        clean.info, source=f"partial(protected={protected.info.source}, fraction={fraction:g}, seed={seed})")
    return type(clean)(ds=prot.union(rest), info=info)


def _check_compatible(clean: "Corpus", protected: "Corpus") -> None:
    a, b = clean.info, protected.info
    if tuple(a.image_shape) != tuple(b.image_shape):
        raise DataError(f"image shape {tuple(b.image_shape)} differs from the clean set's {tuple(a.image_shape)}",
                        item=f"protected corpus {b.source!r}")
    if a.num_classes != b.num_classes:
        raise DataError(f"{b.num_classes} classes, the clean set has {a.num_classes}",
                        item=f"protected corpus {b.source!r}")
    if a.num_rows != b.num_rows:
        raise DataError(f"{b.num_rows} rows, but the clean set has {a.num_rows}: a partial mix needs the "
                        "protected version of the same training rows (same ids)",
                        item=f"protected corpus {b.source!r}")
