"""Source ``cifar10:PATH``: CIFAR-10 in the on-disk "python version" format (torchvision's).

``PATH`` is the directory containing ``cifar-10-batches-py/`` or that directory itself.
``split="train"`` reads ``data_batch_1`` .. ``data_batch_5``, ``"test"`` reads
``test_batch``, ``"all"`` both. Missing batch files are tolerated as long as one of the
split's files exists (subsets); the files' md5 sums are not checked. Each file is a
pickled dict with ``data`` (N x 3072 uint8, channel-planar), ``labels``, ``filenames``,
``batch_label``; ``batches.meta`` gives ``label_names``. Files are read and parsed in
Ray tasks, one file per task. Ids are ``cifar10/<file>/<index in file>``, e.g.
``cifar10/data_batch_1/00017``.

Batch files are Python pickles: only load CIFAR-10 directories you trust.
"""
from __future__ import annotations

import logging
import os
import pickle

import numpy as np

from raypriv.data.corpus import Corpus, CorpusInfo
from raypriv.errors import DataError

log = logging.getLogger(__name__)

DESCRIPTION = "CIFAR-10 python-format batches on disk (cifar10:PATH); subsets allowed"
SUBDIR = "cifar-10-batches-py"
TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_FILES = ("test_batch",)
DEFAULT_CLASS_NAMES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)


def resolve_dir(path: str) -> str:
    """The batches directory: ``PATH/cifar-10-batches-py`` if it exists, else ``PATH``."""
    p = os.path.abspath(os.path.expanduser(path))
    sub = os.path.join(p, SUBDIR)
    if os.path.isdir(sub):
        return sub
    if os.path.isdir(p):
        return p
    raise DataError("no such directory (expected a CIFAR-10 'cifar-10-batches-py' directory)", item=path)


def _get(d: dict, key: str):
    if key.encode() in d:
        return d[key.encode()]
    return d.get(key)


def _unpickle(data: bytes, *, name: str) -> dict:
    try:
        d = pickle.loads(data, encoding="bytes")
    except Exception as e:  # noqa: BLE001 - truncated/corrupt pickles raise many types
        raise DataError(f"cannot read CIFAR-10 batch file ({type(e).__name__}: {e})", item=name) from None
    if not isinstance(d, dict):
        raise DataError(f"expected a pickled dict, got {type(d).__name__}", item=name)
    return d


def read_class_names(root: str) -> tuple[str, ...]:
    """``label_names`` from ``batches.meta``, or the standard CIFAR-10 names if it is absent."""
    meta = os.path.join(root, "batches.meta")
    if not os.path.isfile(meta):
        log.warning("%s: no batches.meta; using the standard CIFAR-10 class names", root)
        return DEFAULT_CLASS_NAMES
    with open(meta, "rb") as f:
        d = _unpickle(f.read(), name=meta)
    names = _get(d, "label_names")
    if not names:
        raise DataError("batches.meta has no 'label_names'", item=meta)
    return tuple(n.decode() if isinstance(n, bytes) else str(n) for n in names)


def parse_batch_file(data: bytes, *, name: str) -> dict:
    """Parse one batch file's bytes into ``{id, label, image}`` arrays (images HWC uint8)."""
    d = _unpickle(data, name=name)
    raw, labels = _get(d, "data"), _get(d, "labels")
    if raw is None or labels is None:
        raise DataError("batch file lacks 'data' or 'labels'", item=name)
    raw = np.asarray(raw)
    if raw.ndim != 2 or raw.shape[1] != 3072 or raw.dtype != np.uint8:
        raise DataError(f"'data' must be N x 3072 uint8, got {raw.shape} {raw.dtype}", item=name)
    labels = np.asarray(labels, dtype=np.int64)
    if len(labels) != len(raw):
        raise DataError(f"{len(raw)} images but {len(labels)} labels", item=name)
    images = np.ascontiguousarray(raw.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
    base = os.path.basename(name)
    ids = np.array([f"cifar10/{base}/{k:05d}" for k in range(len(raw))], dtype=object)
    return {"id": ids, "label": labels, "image": images}


def _parse_batch(batch: dict) -> dict:
    """map_batches UDF: rows of ``{bytes, path}`` (one file each) to corpus rows."""
    parts = [parse_batch_file(bytes(b), name=str(p)) for b, p in zip(batch["bytes"], batch["path"])]
    if len(parts) == 1:
        return parts[0]
    return {k: np.concatenate([p[k] for p in parts]) for k in ("id", "label", "image")}


def load_cifar10(arg: str | None, *, split: str = "train", download: bool = False) -> Corpus:
    """Source ``cifar10:PATH`` (see module docstring)."""
    import ray

    if download:
        import torchvision

        root = os.path.abspath(os.path.expanduser(arg))
        if os.path.basename(root) == SUBDIR:
            root = os.path.dirname(root)
        for train in (True, False):
            torchvision.datasets.CIFAR10(root=root, train=train, download=True)
    root = resolve_dir(arg)
    wanted = {"train": TRAIN_FILES, "test": TEST_FILES, "all": TRAIN_FILES + TEST_FILES}[split]
    files = [os.path.join(root, f) for f in wanted if os.path.isfile(os.path.join(root, f))]
    if not files:
        if split == "test":
            raise DataError(
                "no 'test_batch' file: this CIFAR-10 directory has no test split "
                "(a subset?); use split='train' or split='all'",
                item=root,
            )
        raise DataError(f"no CIFAR-10 batch files found (looked for {', '.join(wanted)})", item=root)
    class_names = read_class_names(root)
    ds = ray.data.read_binary_files(files, include_paths=True, override_num_blocks=len(files))
    ds = ds.map_batches(_parse_batch, batch_size=1, batch_format="numpy")
    info = CorpusInfo(
        classes_declared=True,
        source=f"cifar10:{arg}",
        split=split,
        num_classes=len(class_names),
        image_shape=(32, 32, 3),
        class_names=class_names,
        num_rows=0,
    )
    return Corpus(ds=ds, info=info)
