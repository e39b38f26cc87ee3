"""The corpus: a Ray Dataset of ``{id, label, image}`` rows plus what is known about it.

Rows are ``id`` (str, stable and unique, derived from the source), ``label`` (int64 in
``[0, num_classes)``) and ``image`` (uint8 ``H x W x C`` tensor). A multi-task corpus carries
more labels, one int64 column per :class:`LabelColumn` named in ``CorpusInfo.label_columns``
(``parity``, ``right_digit``); validation, shuffles, the writer and the Parquet reader keep
them, and the fingerprint covers them. The fingerprint is an
order-independent content hash: the same rows in any order or sharding give the same
fingerprint, so it identifies a corpus across shuffles, retries and re-reads.

Two fingerprints, for two uses:

* :meth:`Corpus.fingerprint` is unkeyed: the integrity check of data you may publish
  (a written corpus's manifest records it, and anyone holding the rows can recompute it);
* :meth:`Corpus.keyed_fingerprint` is what an artifact records about its *input*, which is
  often private: each row digest is an HMAC under the data owner's key
  (:mod:`raypriv.privacy.keys`), so the value is no membership oracle.
"""
from __future__ import annotations

import dataclasses
import hashlib
import hmac
import re
import struct
from typing import TYPE_CHECKING

import numpy as np

from raypriv.data._images import iter_images

if TYPE_CHECKING:  # pragma: no cover
    import ray.data

_MOD = 1 << 128

#: Columns every corpus row has; a label column may not take these names.
CORE_COLUMNS = ("id", "label", "image")
_COLUMN_NAME = re.compile(r"[a-z][a-z0-9_]*")


@dataclasses.dataclass(frozen=True)
class LabelColumn:
    """A label column besides ``label``: its name, number of classes (0: inferred as
    ``max + 1`` by validation) and class names.

    >>> LabelColumn("parity", 2, ("even", "odd")).name
    'parity'
    """

    name: str
    num_classes: int = 0
    class_names: tuple[str, ...] = ()

    def __post_init__(self):
        from raypriv.errors import ConfigError

        if not isinstance(self.name, str) or not _COLUMN_NAME.fullmatch(self.name) or self.name in CORE_COLUMNS:
            raise ConfigError("label column", f"names are lowercase identifiers other than {', '.join(CORE_COLUMNS)}; "
                                              f"got {self.name!r}")
        if isinstance(self.num_classes, bool) or not isinstance(self.num_classes, int) or self.num_classes < 0:
            raise ConfigError(f"label column {self.name}", f"num_classes must be an integer >= 0, got {self.num_classes!r}")
        object.__setattr__(self, "class_names", tuple(str(c) for c in self.class_names))
        if self.class_names and self.num_classes and len(self.class_names) != self.num_classes:
            raise ConfigError(f"label column {self.name}", f"{len(self.class_names)} class names for "
                                                          f"{self.num_classes} classes")

    def to_dict(self) -> dict:
        return {"name": self.name, "num_classes": self.num_classes, "class_names": list(self.class_names)}

    @classmethod
    def from_dict(cls, d: dict) -> "LabelColumn":
        return cls(str(d["name"]), int(d.get("num_classes") or 0), tuple(d.get("class_names") or ()))


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
    #: True only when the source states its class list (a built-in set, CIFAR's ``batches.meta``,
    #: one folder per class, a corpus manifest that says so). Otherwise ``num_classes`` is
    #: ``max(label) + 1``, a fact about the rows, which a private run must not publish.
    classes_declared: bool = False
    #: The labels besides ``label``, in order (empty for a single-task corpus).
    label_columns: tuple[LabelColumn, ...] = ()
    #: What ``label`` means (``"digit"``, ``"left_digit"``): the name of its task.
    label_name: str = "label"

    def column_names(self) -> tuple[str, ...]:
        """The names of the label columns besides ``label``."""
        return tuple(c.name for c in self.label_columns)


def row_digest(row_id: str, label: int, image: np.ndarray, *, key: bytes | None = None,
               extra: tuple[tuple[str, int], ...] = ()) -> int:
    """The 128-bit content hash of one row: sha256 of id, label, shape and pixel bytes, then
    any further labels as ``(column, value)`` pairs (HMAC-SHA256 under ``key`` if given). A
    row without further labels hashes as it always has."""
    img = np.ascontiguousarray(image, dtype=np.uint8)
    h = hmac.new(key, digestmod=hashlib.sha256) if key is not None else hashlib.sha256()
    h.update(str(row_id).encode("utf-8"))
    h.update(b"\0")
    h.update(struct.pack("<q", int(label)))
    h.update(struct.pack("<3q", *(tuple(img.shape) + (1, 1, 1))[:3]))
    h.update(img.tobytes())
    for name, value in sorted(extra):
        h.update(b"\0" + name.encode("utf-8") + b"\0" + struct.pack("<q", int(value)))
    return int.from_bytes(h.digest()[:16], "little")


def row_extras(batch: dict, columns: tuple[str, ...], i: int) -> tuple[tuple[str, int], ...]:
    """Row ``i``'s further labels as ``(column, value)`` pairs, for :func:`row_digest`."""
    return tuple((c, int(batch[c][i])) for c in columns)


def _fingerprint_batch(batch: dict, *, key: bytes | None = None, columns: tuple[str, ...] = ()) -> dict:
    """map_batches UDF: the sum mod 2**128 of the row digests of one batch, and its size."""
    total = 0
    ids, labels = batch["id"], batch["label"]
    for i, img in enumerate(iter_images(batch["image"])):
        digest = row_digest(ids[i], labels[i], img, key=key, extra=row_extras(batch, columns, i))
        total = (total + digest) % _MOD
    return {"sum": np.array([f"{total:032x}"]), "n": np.array([len(ids)], dtype=np.int64)}


def sum_partials(rows: list[dict]) -> tuple[str, int]:
    """Reduce partial sums (``{"sum": hex, "n": int}`` rows) to ``(fingerprint, rows)``."""
    total, n = 0, 0
    for r in rows:
        total = (total + int(r["sum"], 16)) % _MOD
        n += int(r["n"])
    return f"{total:032x}", n


def compute_fingerprint(ds: "ray.data.Dataset", *, key: bytes | None = None,
                        columns: tuple[str, ...] = ()) -> tuple[str, int]:
    """``(fingerprint, num_rows)`` of a dataset of corpus rows with further label ``columns``,
    computed with Ray (keyed with ``key``: the raw hex sum, without :func:`keyed_name`'s prefix)."""
    from raypriv.runtime.execute import run

    partial = ds.map_batches(_fingerprint_batch, batch_size=None, batch_format="numpy",
                             fn_kwargs={"key": key, "columns": tuple(columns)})
    return sum_partials(run(partial, lambda d: d.take_all()))


def keyed_name(hex_sum: str, key: bytes) -> str:
    """``hmac-sha256:<key id>:<hex>``: a keyed fingerprint that names (not reveals) its key."""
    from raypriv.privacy.keys import key_id

    return f"hmac-sha256:{key_id(key)}:{hex_sum}"


def _image_digests(batch: dict) -> dict:
    """map_batches UDF: each row's id and the sha256 of its pixels (shape included)."""
    digests = []
    for img in iter_images(batch["image"]):
        img = np.ascontiguousarray(img, dtype=np.uint8)
        digests.append(hashlib.sha256(struct.pack("<3q", *(tuple(img.shape) + (1, 1, 1))[:3]) + img.tobytes())
                       .hexdigest())
    return {"id": np.asarray(batch["id"]).astype(str), "digest": np.array(digests)}


def shared_images(a: "Corpus", b: "Corpus") -> list[str]:
    """Ids of the rows of ``a`` whose pixels equal those of some row of ``b`` (ids and labels
    aside), computed with Ray; ``b``'s digests are gathered on the driver (32 bytes a row)."""
    from raypriv.runtime.execute import run

    def digests(c: "Corpus") -> list[dict]:
        ds = c.ds.map_batches(_image_digests, batch_format="numpy")
        return run(ds, lambda d: d.take_all())

    seen = {r["digest"] for r in digests(b)}
    return sorted(str(r["id"]) for r in digests(a) if r["digest"] in seen)


@dataclasses.dataclass
class Corpus:
    """A Ray Dataset of corpus rows and its :class:`CorpusInfo`.

    Build one with :func:`raypriv.data.load_corpus`; methods that transform images
    produce a new ``Corpus(ds=..., info=...)``.
    """

    ds: "ray.data.Dataset"
    info: CorpusInfo
    _fingerprint: str | None = dataclasses.field(default=None, init=False, repr=False, compare=False)
    _keyed: dict = dataclasses.field(default_factory=dict, init=False, repr=False, compare=False)

    def fingerprint(self) -> str:
        """Order-independent content hash (32 hex digits), computed with Ray and cached.

        Each row's sha256 over (id, label, shape, pixel bytes) is truncated to 128 bits;
        rows are combined by a sum mod 2**128 per block and the block sums are reduced
        the same way, so any order or sharding of the same rows gives the same value.
        """
        if self._fingerprint is None:
            self._fingerprint, _ = compute_fingerprint(self.ds, columns=self.info.column_names())
        return self._fingerprint

    def keyed_fingerprint(self, key: bytes | None = None) -> str:
        """The fingerprint artifacts record about their input: the same order-independent sum,
        of HMAC-SHA256 row digests under ``key`` (default: the data owner's key,
        :func:`raypriv.privacy.keys.owner_key`), as ``hmac-sha256:<key id>:<hex>``. Unlike
        :meth:`fingerprint`, nobody without the key can test a candidate record against it."""
        from raypriv.privacy.keys import owner_key

        key = owner_key() if key is None else key
        cached = self._keyed.get(key)
        if cached is None:
            hex_sum = compute_fingerprint(self.ds, key=key, columns=self.info.column_names())[0]
            cached = self._keyed[key] = keyed_name(hex_sum, key)
        return cached

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
