"""Tiny synthetic corpora for the evaluation tests (no downloads).

Class k of ``num_classes`` = 3 is a noisy oriented pattern (horizontal stripes, vertical
stripes, checkerboard) at a random phase; a victim learns it in a few epochs. The
"protected" copy adds a strong class-wise colour tint (a shortcut that is easier than the
pattern), so a victim trained on it fails on the clean test set.
"""
from __future__ import annotations

import dataclasses

import numpy as np

try:  # the real data layer, when it exists
    from raypriv.data.corpus import Corpus, CorpusInfo
except ImportError:  # pragma: no cover - stand-in until raypriv.data lands
    import ray.data

    @dataclasses.dataclass(frozen=True)
    class CorpusInfo:
        source: str
        split: str
        num_classes: int
        image_shape: tuple
        class_names: tuple
        num_rows: int

    @dataclasses.dataclass
    class Corpus:
        ds: "ray.data.Dataset"
        info: CorpusInfo

NUM_CLASSES = 3
SIZE = 8
TINTS = np.array([[70, -70, -70], [-70, 70, -70], [-70, -70, 70]], dtype=np.int16)


def images(n: int, *, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` uint8 (SIZE, SIZE, 3) images and int64 labels."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % NUM_CLASSES
    rng.shuffle(labels)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    out = np.empty((n, SIZE, SIZE, 3), dtype=np.uint8)
    for i, k in enumerate(labels):
        py, px = rng.integers(0, 2, size=2)
        pattern = [(yy + py) % 2, (xx + px) % 2, (xx + yy + px) % 2][k]
        base = 128 + 25 * (2 * pattern - 1) + rng.normal(0, 40, size=(SIZE, SIZE))
        img = base[..., None] + rng.normal(0, 15, size=(1, 1, 3))
        out[i] = np.clip(img, 0, 255).astype(np.uint8)
    return out, labels.astype(np.int64)


def protect(imgs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Add the class-wise tint shortcut."""
    return np.clip(imgs.astype(np.int16) + TINTS[labels][:, None, None, :], 0, 255).astype(np.uint8)


def corpus(imgs: np.ndarray, labels: np.ndarray, *, split: str, source: str, prefix: str = "r") -> "Corpus":
    """A Corpus over in-memory arrays, ids ``<prefix>00000`` ..."""
    import ray.data

    rows = [{"id": f"{prefix}{i:05d}", "label": int(labels[i]), "image": imgs[i]} for i in range(len(labels))]
    ds = ray.data.from_items(rows, override_num_blocks=2)
    info = CorpusInfo(source=source, split=split, num_classes=NUM_CLASSES, image_shape=imgs.shape[1:],
                      class_names=tuple(f"c{k}" for k in range(NUM_CLASSES)), num_rows=len(labels))
    return Corpus(ds=ds, info=info)


def triple(n_train: int = 240, n_test: int = 120, *, seed: int = 0):
    """(clean train, protected train, clean test) corpora."""
    x, y = images(n_train, seed=seed)
    xt, yt = images(n_test, seed=seed + 1)
    clean = corpus(x, y, split="train", source="synthetic")
    protected = corpus(protect(x, y), y, split="train", source="synthetic-tinted")
    test = corpus(xt, yt, split="test", source="synthetic", prefix="t")
    return clean, protected, test
