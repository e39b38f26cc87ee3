"""Pictures for reports: people judge a generated or protected corpus by looking first.

:func:`first_per_class` collects a few images of every class without reading a corpus whole,
and :func:`save_class_grid` draws them as one PNG: a row per class, the panels (say, DP-VAE
samples and real images of the same class) side by side.

>>> import numpy as np
>>> tiles = montage([np.zeros((4, 4, 1), np.uint8)] * 3, columns=2, pad=1)
>>> tiles.shape
(9, 9, 1)
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from raypriv.data.corpus import Corpus


def first_per_class(corpus: "Corpus", k: int, *, max_batches: int = 40, batch_size: int = 256) -> dict[int, list]:
    """``{label: up to k uint8 images}`` in corpus order, scanning at most ``max_batches``
    batches (a large corpus is never read whole; a class sorted late may get fewer)."""
    found: dict[int, list] = {c: [] for c in range(int(corpus.info.num_classes))}
    for i, batch in enumerate(corpus.ds.select_columns(["image", "label"]).iter_batches(
            batch_size=batch_size, batch_format="numpy")):
        for image, label in zip(batch["image"], batch["label"]):
            bucket = found.setdefault(int(label), [])
            if len(bucket) < k:
                bucket.append(np.asarray(image, dtype=np.uint8))
        if i + 1 >= max_batches or all(len(v) >= k for v in found.values()):
            break
    return found


def montage(images: list, *, columns: int, pad: int = 1, fill: int = 255) -> np.ndarray:
    """Images ``(H, W, C)`` tiled row by row, ``columns`` per row, ``pad`` pixels of ``fill`` between."""
    h, w, c = images[0].shape
    rows = -(-len(images) // columns)
    out = np.full((rows * (h + pad) - pad, columns * (w + pad) - pad, c), fill, dtype=np.uint8)
    for i, img in enumerate(images):
        r, q = divmod(i, columns)
        out[r * (h + pad):r * (h + pad) + h, q * (w + pad):q * (w + pad) + w] = img
    return out


def save_class_grid(panels: list[tuple[str, "Corpus"]], path: str, *, per_class: int = 8,
                    class_names: tuple[str, ...] = (), title: str = "") -> str:
    """A PNG with one row per class and, side by side, ``per_class`` images of each panel's
    corpus for that class (a blank tile where a corpus has fewer). Returns ``path``."""
    from matplotlib.figure import Figure

    from raypriv.files import save_figure

    collected = [(name, first_per_class(corpus, per_class)) for name, corpus in panels]
    shapes = [imgs[0].shape for _, found in collected for imgs in found.values() if imgs]
    if not shapes:
        from raypriv.errors import DataError

        raise DataError("no images to draw", item=", ".join(corpus.info.source for _, corpus in panels))
    shape = shapes[0]
    classes = sorted({c for _, found in collected for c in found})
    blank = np.full(shape, 255, dtype=np.uint8)
    fig = Figure(figsize=(1.9 * len(panels) * per_class / 8 + 0.9, 0.45 * len(classes) + 0.8), dpi=110)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (name, found) in zip(axes, collected):
        tiles = [found.get(c, [])[j] if j < len(found.get(c, [])) else blank
                 for c in classes for j in range(per_class)]
        img = montage(tiles, columns=per_class)
        ax.imshow(img[..., 0] if img.shape[-1] == 1 else img, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
        ax.set_title(name, fontsize=8)
        ax.set_xticks([])
        step = shape[0] + 1
        ax.set_yticks([i * step + shape[0] / 2 for i in range(len(classes))])
        ax.set_yticklabels([class_names[c] if c < len(class_names) else str(c) for c in classes], fontsize=6)
    if title:
        fig.suptitle(title, fontsize=9)
    return save_figure(fig, path)
