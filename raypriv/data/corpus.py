"""The corpus: a Ray Dataset of ``{id, label, image}`` rows plus what is known about it.

Rows are ``id`` (str, stable and unique, derived from the source), ``label`` (int64 in
``[0, num_classes)``) and ``image`` (uint8 ``H x W x C`` tensor). The fingerprint is an
order-independent content hash: the same rows in any order or sharding give the same
fingerprint, so it identifies a corpus across shuffles, retries and re-reads.
"""
from __future__ import annotations

import dataclasses
import hashlib
import struct
from typing import TYPE_CHECKING

import numpy as np

from raypriv.data._images import iter_images

if TYPE_CHECKING:  # pragma: no cover
    import ray.data

_MOD = 1 << 128


@dataclasses.dataclass(frozen=True)
class CorpusInfo:
    """What is known about a corpus.

    ``source`` is the spec it was loaded from (``"mnist5k"``, ``"cifar10:/data/x"``),
    ``split`` one of ``"train"``, ``"test"``, ``"all"``.
    """

    source: str
    split: str
    num_classes: int
    image_shape: tuple[int, int, int]
    class_names: tuple[str, ...]
    num_rows: int


def row_digest(row_id: str, label: int, image: np.ndarray) -> int:
    """The 128-bit content hash of one row: sha256 of id, label, shape and pixel bytes."""
    img = np.ascontiguousarray(image, dtype=np.uint8)
    h = hashlib.sha256()
    h.update(str(row_id).encode("utf-8"))
    h.update(b"\0")
    h.update(struct.pack("<q", int(label)))
    h.update(struct.pack("<3q", *(tuple(img.shape) + (1, 1, 1))[:3]))
    h.update(img.tobytes())
    return int.from_bytes(h.digest()[:16], "little")


def _fingerprint_batch(batch: dict) -> dict:
    """map_batches UDF: the sum mod 2**128 of the row digests of one batch, and its size."""
    total = 0
    ids, labels = batch["id"], batch["label"]
    for i, img in enumerate(iter_images(batch["image"])):
        total = (total + row_digest(ids[i], labels[i], img)) % _MOD
    return {"sum": np.array([f"{total:032x}"]), "n": np.array([len(ids)], dtype=np.int64)}


def sum_partials(rows: list[dict]) -> tuple[str, int]:
    """Reduce partial sums (``{"sum": hex, "n": int}`` rows) to ``(fingerprint, rows)``."""
    total, n = 0, 0
    for r in rows:
        total = (total + int(r["sum"], 16)) % _MOD
        n += int(r["n"])
    return f"{total:032x}", n


def compute_fingerprint(ds: "ray.data.Dataset") -> tuple[str, int]:
    """``(fingerprint, num_rows)`` of a dataset of corpus rows, computed with Ray."""
    from raypriv.data._execution import run

    partial = ds.map_batches(_fingerprint_batch, batch_size=None, batch_format="numpy")
    return sum_partials(run(partial, lambda d: d.take_all()))


@dataclasses.dataclass
class Corpus:
    """A Ray Dataset of corpus rows and its :class:`CorpusInfo`.

    Build one with :func:`raypriv.data.load_corpus`; methods that transform images
    produce a new ``Corpus(ds=..., info=...)``.
    """

    ds: "ray.data.Dataset"
    info: CorpusInfo
    _fingerprint: str | None = dataclasses.field(default=None, init=False, repr=False, compare=False)

    def fingerprint(self) -> str:
        """Order-independent content hash (32 hex digits), computed with Ray and cached.

        Each row's sha256 over (id, label, shape, pixel bytes) is truncated to 128 bits;
        rows are combined by a sum mod 2**128 per block and the block sums are reduced
        the same way, so any order or sharding of the same rows gives the same value.
        """
        if self._fingerprint is None:
            self._fingerprint, _ = compute_fingerprint(self.ds)
        return self._fingerprint

    def subsample(self, fraction: float, *, seed: int = 0) -> "Corpus":
        """About ``fraction`` of the rows, chosen by a hash of each id (the same rows however the
        corpus is sharded or ordered), as a new, materialized corpus."""
        from raypriv.hashing import id_uniform

        def keep(batch, *, fraction: float, seed: int):
            mask = id_uniform(batch["id"], seed=seed, salt="subsample") < fraction
            return {k: v[mask] for k, v in batch.items()}

        ds = self.ds.map_batches(keep, fn_kwargs=dict(fraction=fraction, seed=seed), batch_format="numpy").materialize()
        return Corpus(ds=ds, info=dataclasses.replace(self.info, num_rows=ds.count()))

    def head(self, n: int) -> "Corpus":
        """The first ``n`` rows (in the dataset's block order) as a new, materialized corpus."""
        ds = self.ds.limit(n).materialize()
        return Corpus(ds=ds, info=dataclasses.replace(self.info, num_rows=ds.count()))
