"""A validation split cut from a training corpus, for choosing settings without the test split.

Settings (a preset, ε, a trade-off parameter, a sweep's winner) are chosen on a validation
split cut from the *training* data; the test split is looked at once, for the settings
chosen. :func:`holdout` cuts that split: each row goes to validation when a salted hash of its
id falls below ``fraction``, so the cut is the same on every run, in any row order or block
layout, and needs no shuffle or count first. Within each class the share is ``fraction``
up to sampling noise (the hash is uniform and ignores the label).

Example::

    from raypriv.data import holdout, load_corpus

    train, val = holdout(load_corpus("mnist5k", split="train"), fraction=0.2)
    train.info.num_rows + val.info.num_rows                   # 4000
    val.info.split                                            # 'validation'
"""
from __future__ import annotations

import dataclasses

from raypriv.data.corpus import Corpus
from raypriv.errors import ConfigError, DataError

#: Salt of the id hash that decides validation membership (independent of the shard hash).
HOLDOUT_SALT = "validation-holdout"


def in_holdout(ids, *, fraction: float, seed: int = 0):
    """Boolean mask: which ``ids`` belong to the validation split.

    >>> in_holdout(["a", "b", "c"], fraction=0.0).tolist()
    [False, False, False]
    """
    from raypriv.hashing import id_uniform

    return id_uniform(ids, seed=seed, salt=HOLDOUT_SALT) < fraction


def holdout(corpus: Corpus, *, fraction: float, seed: int = 0) -> tuple[Corpus, Corpus]:
    """``(rest, validation)``: ``corpus`` cut in two by id hash (see the module docstring).

    Both parts are materialized; their ``info.split`` is the corpus's own (``"train"``) and
    ``"validation"``. Raises :class:`~raypriv.errors.ConfigError` for a fraction outside
    (0, 1) and :class:`~raypriv.errors.DataError` when either part would be empty.
    """
    if not 0.0 < fraction < 1.0:
        raise ConfigError("holdout fraction", f"must be in (0, 1), got {fraction}")
    import numpy as np

    def keep(batch, held):
        mask = in_holdout(np.asarray(batch["id"]).astype(str), fraction=fraction, seed=seed) == held
        return {k: np.asarray(v)[mask] for k, v in batch.items()}

    parts = []
    for held, split in ((False, corpus.info.split), (True, "validation")):
        ds = corpus.ds.map_batches(keep, fn_kwargs={"held": held}, batch_format="numpy").materialize()
        n = ds.count()
        if n == 0:
            raise DataError(f"{corpus.info.source}: a holdout of {fraction:g} leaves the "
                            f"{'validation' if held else 'training'} part empty ({corpus.info.num_rows} rows)")
        parts.append(Corpus(ds=ds, info=dataclasses.replace(corpus.info, split=split, num_rows=n)))
    return parts[0], parts[1]
