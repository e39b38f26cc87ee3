"""Validation of a corpus as part of its Ray Data pipeline.

Checks, each failing with a :class:`~raypriv.errors.DataError` that names the item:

* unreadable or truncated image files (raised by the decoders, naming the file);
* images that are not uint8 ``H x W x C`` (naming the id);
* mixed image sizes, unless ``resize`` is given (naming an offending id and both shapes);
* mixed channel counts, even with ``resize`` (grayscale vs RGB named);
* labels outside ``[0, num_classes)`` (naming the id and label), in ``label`` and in every
  further label column (naming the column too), and a label column the rows lack;
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


def check_label(row_id: str, label: int, num_classes: int | None, *, column: str = "label") -> None:
    if label < 0 or (num_classes is not None and label >= num_classes):
        bound = num_classes if num_classes is not None else "num_classes"
        what = "label" if column == "label" else f"label column {column!r}: value"
        raise DataError(f"{what} {label} out of range [0, {bound})", item=row_id)


def _label_arrays(batch: dict, columns: tuple[str, ...], source: str) -> dict[str, np.ndarray]:
    """``label`` and each further label column of ``batch`` as int64 arrays."""
    out = {}
    for c in ("label",) + tuple(columns):
        if c not in batch:
            raise DataError(f"rows lack the label column {c!r} their corpus declares", item=source)
        values = np.asarray(batch[c])
        if c != "label" and values.dtype.kind not in "iub":
            raise DataError(f"label column {c!r} holds {values.dtype} values; labels are integers", item=source)
        out[c] = values.astype(np.int64)
    return out


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
    batch: dict, *, num_classes: int | None, resize: int | None, check_labels: bool = True,
    columns: tuple[tuple[str, int | None], ...] = (), source: str = "corpus",
) -> dict:
    """map_batches UDF: optional resize, uint8 HxWxC images, int64 labels, str ids, and the
    per-row checks (same shape as the batch's first row, label ranges). ``columns`` are the
    further label columns as ``(name, num_classes or None)``."""
    ids = [str(x) for x in batch["id"]]
    labels = _label_arrays(batch, tuple(c for c, _ in columns), source)
    bounds = {"label": num_classes, **dict(columns)}
    images = []
    for i, raw in enumerate(iter_images(batch["image"])):
        img = _as_image(ids[i], raw)
        if resize is not None:
            img = resize_image(img, resize)
        if images:
            check_same_shape(ids[i], img.shape, ids[0], images[0].shape)
        if check_labels:
            for c, values in labels.items():
                check_label(ids[i], int(values[i]), bounds[c], column=c)
        images.append(img)
    return {"id": np.array(ids, dtype=object), **labels, "image": stack_images(images)}


def summarize_block(batch: dict, *, columns: tuple[str, ...] = ()):
    """map_batches UDF over whole blocks: one summary row (shape, label ranges, ids)."""
    import json

    import pyarrow as pa

    ids = [str(x) for x in batch["id"]]
    labels = np.asarray(batch["label"], dtype=np.int64)
    ranges = {}
    for c in columns:
        v = np.asarray(batch[c], dtype=np.int64)
        if len(v):
            ranges[c] = [int(v.min()), ids[int(v.argmin())], int(v.max()), ids[int(v.argmax())]]
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
        "column_ranges": [json.dumps(ranges)],
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
                ("column_ranges", pa.string()),
            ]
        ),
    )


def check_summaries(summaries: list[dict], *, source: str, num_classes: int | None,
                    columns: tuple[tuple[str, int | None], ...] = ()) -> dict:
    """Cross-block checks in the driver. Returns rows, image_shape, the label range and each
    further label column's maximum (``column_max``)."""
    import json

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
    column_max = {}
    ranges = [json.loads(s.get("column_ranges") or "{}") for s in blocks]
    for c, bound in columns:
        found = [r[c] for r in ranges if c in r]
        lo_c, hi_c = min(found, key=lambda r: r[0]), max(found, key=lambda r: r[2])
        check_label(lo_c[1], lo_c[0], bound, column=c)
        check_label(hi_c[3], hi_c[2], bound, column=c)
        column_max[c] = hi_c[2]
    seen: set[str] = set()
    for s in blocks:
        for i in s["ids"]:
            if i in seen:
                raise DataError(f"duplicate id in {source}: ids must be unique", item=i)
            seen.add(i)
    return {"rows": total, "image_shape": tuple(int(v) for v in ref["shape"]), "max_label": int(hi["max_label"]),
            "column_max": column_max}


def _max_labels(batch: dict, *, columns: tuple[str, ...]) -> dict:
    out = {}
    for c in ("label",) + tuple(columns):
        v = np.asarray(batch[c], dtype=np.int64)
        out[c] = np.array([v.max() if len(v) else -1], dtype=np.int64)
    return out


def _complete_columns(info: CorpusInfo, column_max: dict[str, int]) -> tuple:
    """The label columns with inferred class counts (``max + 1``) and default class names."""
    out = []
    for col in info.label_columns:
        n = col.num_classes or int(column_max.get(col.name, -1)) + 1
        names = col.class_names if len(col.class_names) == n else tuple(str(i) for i in range(n))
        out.append(dataclasses.replace(col, num_classes=n, class_names=names))
    return tuple(out)


def finalize_corpus(corpus: Corpus, *, resize: int | None = None, validate: bool = True) -> Corpus:
    """Normalize, optionally resize and validate a source's raw corpus, and materialize it.

    The returned corpus has a materialized dataset (blocks in the Ray object store, not
    in the driver) and a complete :class:`CorpusInfo` (rows, image shape, classes). If
    the source left ``num_classes`` at 0 it is inferred as ``max(label) + 1``.
    """
    from raypriv.runtime.execute import run

    info = corpus.info
    known_classes = info.num_classes if info.num_classes > 0 else None
    columns = tuple((c.name, c.num_classes or None) for c in info.label_columns)
    names_only = info.column_names()
    ds = corpus.ds.map_batches(
        normalize_batch,
        batch_size=256,
        batch_format="numpy",
        fn_kwargs={"num_classes": known_classes, "resize": resize, "check_labels": validate, "columns": columns,
                   "source": info.source},
    )
    ds = run(ds, lambda d: d.materialize())
    if validate:
        summary_ds = ds.map_batches(summarize_block, batch_size=None, batch_format="numpy",
                                    fn_kwargs={"columns": names_only})
        summaries = run(summary_ds, lambda d: d.take_all())
        facts = check_summaries(summaries, source=info.source, num_classes=known_classes, columns=columns)
        rows, shape, max_label = facts["rows"], facts["image_shape"], facts["max_label"]
        column_max = facts["column_max"]
    else:
        rows = ds.count()
        if rows == 0:
            raise DataError("corpus is empty: no images/rows were found", item=info.source)
        first = ds.take(1)[0]
        shape = tuple(int(v) for v in np.asarray(first["image"]).shape)
        maxima = [{"label": known_classes - 1} if known_classes is not None else {}]
        if known_classes is None or any(bound is None for _, bound in columns):
            maxima = run(ds.map_batches(_max_labels, batch_size=None, batch_format="numpy",
                                        fn_kwargs={"columns": names_only}), lambda d: d.take_all())
        column_max = {c: max(int(r[c]) for r in maxima) for c in names_only if c in maxima[0]}
        max_label = known_classes - 1 if known_classes is not None else max(int(r["label"]) for r in maxima)
    num_classes = known_classes if known_classes is not None else max_label + 1
    names = tuple(info.class_names)
    if len(names) != num_classes:
        names = tuple(str(i) for i in range(num_classes))
    new_info = dataclasses.replace(
        info, num_classes=num_classes, class_names=names, image_shape=shape, num_rows=int(rows),
        classes_declared=info.classes_declared and known_classes is not None,
        label_columns=_complete_columns(info, column_max),
    )
    return Corpus(ds=ds, info=new_info)


def validate_corpus(corpus: Corpus) -> CorpusInfo:
    """Run the validation checks on an existing corpus (e.g. one produced by a transform)
    and return its info with rows and image shape recomputed."""
    return finalize_corpus(corpus, validate=True).info
