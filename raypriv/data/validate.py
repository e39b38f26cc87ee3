"""Validation of a corpus as part of its Ray Data pipeline.

Checks, each failing with a :class:`~raypriv.errors.DataError` that names the item:

* unreadable or truncated image files (raised by the decoders, naming the file);
* images that are not uint8 ``H x W x C`` (naming the id);
* mixed image sizes, unless ``resize`` is given (naming an offending id and both shapes);
* mixed channel counts, even with ``resize`` (grayscale vs RGB named);
* labels outside ``[0, num_classes)`` (naming the id and label);
* an empty corpus (naming the source);
* duplicate ids (naming one).

Per-row checks run inside Ray tasks (``map_batches``); a second pass over the
materialized dataset returns one small summary per block (shape, label range, ids),
which the driver checks across blocks.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from raypriv.data._images import iter_images, resize_image, stack_images
from raypriv.data.corpus import Corpus, CorpusInfo
from raypriv.errors import DataError

_CHANNEL_NAMES = {1: "grayscale", 2: "grayscale+alpha", 3: "RGB", 4: "RGBA"}


def _channels(c: int) -> str:
    return f"{_CHANNEL_NAMES.get(c, f'{c}-channel')} ({c} channel{'s' if c != 1 else ''})"


def _shape(s) -> str:
    return "x".join(str(int(v)) for v in s)


def check_same_shape(row_id: str, shape, ref_id: str, ref_shape) -> None:
    """Raise a DataError naming ``row_id`` if its image shape differs from the reference."""
    shape, ref_shape = tuple(int(v) for v in shape), tuple(int(v) for v in ref_shape)
    if shape == ref_shape:
        return
    if shape[2] != ref_shape[2]:
        raise DataError(
            f"mixed channel counts: this image is {_channels(shape[2])} but {ref_id!r} is "
            f"{_channels(ref_shape[2])}; all images must have the same number of channels",
            item=row_id,
        )
    raise DataError(
        f"mixed image sizes: this image is {_shape(shape)} (HxWxC) but {ref_id!r} is "
        f"{_shape(ref_shape)}; pass resize=N to resize all images to NxN",
        item=row_id,
    )


def check_label(row_id: str, label: int, num_classes: int | None) -> None:
    if label < 0 or (num_classes is not None and label >= num_classes):
        bound = num_classes if num_classes is not None else "num_classes"
        raise DataError(f"label {label} out of range [0, {bound})", item=row_id)


def _as_image(row_id: str, img) -> np.ndarray:
    img = np.asarray(img)
    if img.ndim == 2:
        img = img[:, :, None]
    if img.ndim != 3:
        raise DataError(f"image has shape {img.shape}; expected H x W x C", item=row_id)
    if img.dtype != np.uint8:
        raise DataError(f"image dtype is {img.dtype}; expected uint8 (0..255)", item=row_id)
    return img


def normalize_batch(
    batch: dict, *, num_classes: int | None, resize: int | None, check_labels: bool = True
) -> dict:
    """map_batches UDF: optional resize, uint8 HxWxC images, int64 labels, str ids, and the
    per-row checks (same shape as the batch's first row, label range)."""
    ids = [str(x) for x in batch["id"]]
    labels = np.asarray(batch["label"]).astype(np.int64)
    images = []
    for i, raw in enumerate(iter_images(batch["image"])):
        img = _as_image(ids[i], raw)
        if resize is not None:
            img = resize_image(img, resize)
        if images:
            check_same_shape(ids[i], img.shape, ids[0], images[0].shape)
        if check_labels:
            check_label(ids[i], int(labels[i]), num_classes)
        images.append(img)
    return {"id": np.array(ids, dtype=object), "label": labels, "image": stack_images(images)}


def summarize_block(batch: dict):
    """map_batches UDF over whole blocks: one summary row (shape, label range, ids)."""
    import pyarrow as pa

    ids = [str(x) for x in batch["id"]]
    labels = np.asarray(batch["label"], dtype=np.int64)
    images = iter_images(batch["image"])
    shape = None
    for i, img in enumerate(images):
        if shape is None:
            shape = img.shape
        else:
            check_same_shape(ids[i], img.shape, ids[0], shape)
    n = len(ids)
    row = {
        "n": [n],
        "shape": [list(shape) if shape is not None else None],
        "first_id": [ids[0] if n else None],
        "min_label": [int(labels.min()) if n else None],
        "min_label_id": [ids[int(labels.argmin())] if n else None],
        "max_label": [int(labels.max()) if n else None],
        "max_label_id": [ids[int(labels.argmax())] if n else None],
        "ids": [ids],
    }
    return pa.table(
        row,
        schema=pa.schema(
            [
                ("n", pa.int64()),
                ("shape", pa.list_(pa.int64())),
                ("first_id", pa.string()),
                ("min_label", pa.int64()),
                ("min_label_id", pa.string()),
                ("max_label", pa.int64()),
                ("max_label_id", pa.string()),
                ("ids", pa.list_(pa.string())),
            ]
        ),
    )


def check_summaries(summaries: list[dict], *, source: str, num_classes: int | None) -> dict:
    """Cross-block checks in the driver. Returns rows, image_shape and label range."""
    blocks = [s for s in summaries if s["n"]]
    total = sum(int(s["n"]) for s in blocks)
    if total == 0:
        raise DataError("corpus is empty: no images/rows were found", item=source)
    ref = blocks[0]
    for s in blocks[1:]:
        check_same_shape(s["first_id"], s["shape"], ref["first_id"], ref["shape"])
    lo = min(blocks, key=lambda s: s["min_label"])
    hi = max(blocks, key=lambda s: s["max_label"])
    check_label(lo["min_label_id"], int(lo["min_label"]), num_classes)
    check_label(hi["max_label_id"], int(hi["max_label"]), num_classes)
    seen: set[str] = set()
    for s in blocks:
        for i in s["ids"]:
            if i in seen:
                raise DataError(f"duplicate id in {source}: ids must be unique", item=i)
            seen.add(i)
    return {"rows": total, "image_shape": tuple(int(v) for v in ref["shape"]), "max_label": int(hi["max_label"])}


def _max_label(batch: dict) -> dict:
    labels = np.asarray(batch["label"], dtype=np.int64)
    return {"max": np.array([labels.max() if len(labels) else -1], dtype=np.int64)}


def finalize_corpus(corpus: Corpus, *, resize: int | None = None, validate: bool = True) -> Corpus:
    """Normalize, optionally resize and validate a source's raw corpus, and materialize it.

    The returned corpus has a materialized dataset (blocks in the Ray object store, not
    in the driver) and a complete :class:`CorpusInfo` (rows, image shape, classes). If
    the source left ``num_classes`` at 0 it is inferred as ``max(label) + 1``.
    """
    from raypriv.runtime.execute import run

    info = corpus.info
    known_classes = info.num_classes if info.num_classes > 0 else None
    ds = corpus.ds.map_batches(
        normalize_batch,
        batch_size=256,
        batch_format="numpy",
        fn_kwargs={"num_classes": known_classes, "resize": resize, "check_labels": validate},
    )
    ds = run(ds, lambda d: d.materialize())
    if validate:
        summary_ds = ds.map_batches(summarize_block, batch_size=None, batch_format="numpy")
        summaries = run(summary_ds, lambda d: d.take_all())
        facts = check_summaries(summaries, source=info.source, num_classes=known_classes)
        rows, shape, max_label = facts["rows"], facts["image_shape"], facts["max_label"]
    else:
        rows = ds.count()
        if rows == 0:
            raise DataError("corpus is empty: no images/rows were found", item=info.source)
        first = ds.take(1)[0]
        shape = tuple(int(v) for v in np.asarray(first["image"]).shape)
        if known_classes is None:
            maxima = run(ds.map_batches(_max_label, batch_size=None, batch_format="numpy"), lambda d: d.take_all())
            max_label = max(int(r["max"]) for r in maxima)
        else:
            max_label = known_classes - 1
    num_classes = known_classes if known_classes is not None else max_label + 1
    names = tuple(info.class_names)
    if len(names) != num_classes:
        names = tuple(str(i) for i in range(num_classes))
    new_info = dataclasses.replace(
        info, num_classes=num_classes, class_names=names, image_shape=shape, num_rows=int(rows),
        classes_declared=info.classes_declared and known_classes is not None,
    )
    return Corpus(ds=ds, info=new_info)


def validate_corpus(corpus: Corpus) -> CorpusInfo:
    """Run the validation checks on an existing corpus (e.g. one produced by a transform)
    and return its info with rows and image shape recomputed."""
    return finalize_corpus(corpus, validate=True).info
