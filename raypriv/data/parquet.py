"""Source ``parquet:PATH``: a directory (local or URI) of Parquet files with ``id``,
``label`` and ``image`` columns, ``image`` either PNG/JPEG bytes (raypriv's own output
format, see :mod:`raypriv.data.writer`) or a tensor column. Further label columns (a
multi-task corpus) are the ``label_columns`` a manifest names, or without one every other
integer column (names starting with ``_`` aside).

``split="train"``/``"test"`` read ``PATH/train``/``PATH/test`` when that sub-folder
exists; otherwise ``train`` and ``all`` read ``PATH`` itself. A ``manifest.json`` next to
the files (or in ``PATH``) supplies ``num_classes`` and ``class_names``; without one,
``num_classes`` is ``max(label) + 1`` (and ``CorpusInfo.classes_declared`` is False). Files are read and images decoded in Ray tasks.
"""
from __future__ import annotations

import os

import numpy as np

from raypriv.data._images import decode_image, stack_images
from raypriv.data.corpus import CORE_COLUMNS, Corpus, CorpusInfo, LabelColumn
from raypriv.errors import ArtifactError, ConfigError, DataError
from raypriv.manifest import read_manifest
from raypriv.storage import filesystem, is_uri

DESCRIPTION = "Parquet files with id/label/image columns (parquet:PATH), e.g. raypriv outputs"
REQUIRED_COLUMNS = ("id", "label", "image")


def _isdir(path: str) -> bool:
    import pyarrow.fs as pafs

    fs, p, _ = filesystem(path)
    return fs.get_file_info(p).type == pafs.FileType.Directory


def _join(path: str, name: str) -> str:
    return path.rstrip("/") + "/" + name


def resolve_split_dir(path: str, split: str) -> str:
    if not is_uri(path):
        path = os.path.abspath(os.path.expanduser(path))
        if not os.path.exists(path):
            raise DataError("no such file or directory", item=path)
    if split in ("train", "test") and _isdir(_join(path, split)):
        return _join(path, split)
    if split == "test":
        raise DataError("split='test' needs a 'test' sub-folder", item=path)
    return path


def _maybe_manifest(*dirs: str) -> dict | None:
    for d in dirs:
        try:
            return read_manifest(d)
        except ArtifactError:
            continue
    return None


def _decode_batch(batch: dict, *, columns: tuple[str, ...] = ()) -> dict:
    """map_batches UDF: decode encoded images (bytes) and pass tensors through."""
    ids = np.array([str(x) for x in batch["id"]], dtype=object)
    col = batch["image"]
    images = []
    for i, x in enumerate(col if not (isinstance(col, np.ndarray) and col.dtype != object) else list(col)):
        if isinstance(x, (bytes, bytearray, memoryview)):
            images.append(decode_image(bytes(x), name=ids[i]))
        else:
            img = np.asarray(x)
            images.append(img[:, :, None] if img.ndim == 2 else img)
    return {"id": ids, "label": np.asarray(batch["label"]).astype(np.int64), "image": stack_images(images),
            **{c: np.asarray(batch[c]) for c in columns}}


def _label_columns(schema, manifest: dict, read_dir: str) -> tuple[LabelColumn, ...]:
    """The further label columns: those the manifest names, else every other integer column."""
    import pyarrow as pa

    if "label_columns" in manifest:
        cols = tuple(LabelColumn.from_dict(d) for d in manifest["label_columns"])
        missing = [c.name for c in cols if c.name not in schema.names]
        if missing:
            raise DataError(f"the manifest names label column(s) {', '.join(missing)} that the files lack",
                            item=read_dir)
        return cols
    found = []
    for name, kind in zip(schema.names, schema.types):
        if name in CORE_COLUMNS or name.startswith("_"):
            continue
        if isinstance(kind, pa.DataType) and pa.types.is_integer(kind):
            try:
                found.append(LabelColumn(name))
            except ConfigError as e:
                raise DataError(f"integer column {name!r} cannot be a label column: {e}", item=read_dir) from None
    return tuple(found)


def _read_parquet(path: str):
    """``ray.data.read_parquet`` through the classic datasource: in Ray 2.60 the
    DataSourceV2 path spends ~10 s listing files on small local directories."""
    import ray

    ctx = ray.data.DataContext.get_current()
    old = getattr(ctx, "use_datasource_v2", False)
    ctx.use_datasource_v2 = False
    try:
        return ray.data.read_parquet(path, file_extensions=["parquet"])
    finally:
        ctx.use_datasource_v2 = old


def load_parquet(arg: str | None, *, split: str = "train", download: bool = False) -> Corpus:
    """Source ``parquet:PATH`` (see module docstring)."""
    read_dir = resolve_split_dir(arg, split)
    if not is_uri(read_dir) and os.path.isdir(read_dir):
        has_files = any(
            f.endswith(".parquet") for _, _, fs in os.walk(read_dir) for f in fs if not f.startswith(".")
        )
        if not has_files:
            raise DataError("corpus is empty: no .parquet files found", item=f"parquet:{arg}")
    manifest = _maybe_manifest(read_dir, arg) or {}
    ds = _read_parquet(read_dir)
    schema = ds.schema()
    missing = [c for c in REQUIRED_COLUMNS if c not in schema.names]
    if missing:
        raise DataError(
            f"missing column(s) {', '.join(missing)}; expected columns id, label, image", item=read_dir
        )
    label_columns = _label_columns(schema, manifest, read_dir)
    columns = tuple(c.name for c in label_columns)
    ds = ds.select_columns(list(REQUIRED_COLUMNS) + list(columns)).map_batches(
        _decode_batch, batch_size=256, batch_format="numpy", fn_kwargs={"columns": columns}
    )
    class_names = tuple(str(c) for c in manifest.get("class_names") or ())
    num_classes = int(manifest.get("num_classes") or len(class_names) or 0)
    info = CorpusInfo(
        source=f"parquet:{arg}",
        split=split,
        num_classes=num_classes,
        image_shape=tuple(manifest.get("image_shape") or (0, 0, 0)),
        class_names=class_names,
        num_rows=int(manifest.get("rows") or 0),
        # a manifest's class list counts as declared unless the corpus it describes had inferred its own
        classes_declared=bool(num_classes) and bool(manifest.get("classes_declared", True)),
        label_columns=label_columns,
        label_name=str(manifest.get("label_name") or "label"),
    )
    return Corpus(ds=ds, info=info)
