"""Builders of small on-disk datasets in their real formats (no downloads), for tests/data."""
import os
import pickle

import numpy as np
from PIL import Image

CIFAR_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def write_cifar(root, *, n=20, batches=("data_batch_1", "data_batch_2", "test_batch"), meta=True, seed=0):
    """Write CIFAR-10 python-format batch files under ``root/cifar-10-batches-py``.

    Returns ``{file name: (data N x 3072 uint8, labels list)}``.
    """
    rng = np.random.default_rng(seed)
    d = os.path.join(str(root), "cifar-10-batches-py")
    os.makedirs(d, exist_ok=True)
    out = {}
    for name in batches:
        data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
        labels = [int(x) for x in rng.integers(0, 10, size=n)]
        obj = {
            b"batch_label": f"{name} of 5".encode(),
            b"labels": labels,
            b"data": data,
            b"filenames": [f"img_{name}_{k}.png".encode() for k in range(n)],
        }
        with open(os.path.join(d, name), "wb") as f:
            pickle.dump(obj, f, protocol=2)
        out[name] = (data, labels)
    if meta:
        with open(os.path.join(d, "batches.meta"), "wb") as f:
            pickle.dump({b"label_names": [s.encode() for s in CIFAR_NAMES], b"num_vis": 3072}, f)
    return out


def write_png(path, array):
    """Save a uint8 HxW or HxWxC array as PNG, creating folders."""
    os.makedirs(os.path.dirname(str(path)), exist_ok=True)
    arr = np.asarray(array, dtype=np.uint8)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    Image.fromarray(arr).save(str(path))


def write_imagefolder(root, *, classes=("cat", "dog"), per_class=3, shape=(8, 8, 3), seed=0):
    """A class-per-folder PNG tree; returns ``{relative path: (label, HxWxC array)}``."""
    rng = np.random.default_rng(seed)
    out = {}
    for label, cls in enumerate(classes):
        for k in range(per_class):
            arr = rng.integers(0, 256, size=shape, dtype=np.uint8)
            rel = f"{cls}/{k:03d}.png"
            write_png(os.path.join(str(root), rel), arr)
            out[rel] = (label, arr if arr.ndim == 3 else arr[:, :, None])
    return out


def rows_by_id(corpus):
    """``{id: (label, image)}`` of a corpus (small test corpora only)."""
    return {r["id"]: (int(r["label"]), np.asarray(r["image"])) for r in corpus.ds.take_all()}
