"""Writing corpora to disk: Parquet shards + ``manifest.json``, or an ImageFolder PNG tree.

Parquet layout (what ``load_corpus("parquet:PATH")`` reads back)::

    PATH/part-00000.parquet ...   columns id (string), label (int64), image (PNG bytes),
                                  then one int64 column per further label column
    PATH/manifest.json            caller's provenance + rows, image_shape, num_classes,
                                  class_names, label_name, label_columns, files (name,
                                  bytes, sha256), fingerprint,
                                  raypriv_version, created_at, wall_time_s

Local paths are written atomically: everything goes to a sibling ``.<name>.tmp-<random>``
directory which is renamed into place at the end, and removed on any error, so a crash
never leaves a directory that looks complete. For URIs (``s3://``, ``gs://``,
``file://``) shards are written under the prefix first and ``manifest.json`` last: the
manifest's presence marks completeness. PNG encoding runs in Ray tasks.
"""
from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import time
from typing import Any

import numpy as np

from raypriv.data._images import IMAGE_EXTENSIONS, encode_png, iter_images, sanitize_name
from raypriv.data.corpus import Corpus, row_digest, row_extras, sum_partials
from raypriv.errors import ArtifactError, ConfigError, DataError
from raypriv.manifest import MANIFEST_NAME, to_jsonable, utc_now, write_manifest
from raypriv.storage import filesystem, is_uri

FORMAT = "raypriv-parquet-v1"


# ----------------------------------------------------------------------------- helpers

def _encode_batch(batch: dict, *, image_shape: tuple[int, ...] | None, columns: tuple[str, ...] = ()) -> Any:
    """map_batches UDF: PNG-encode images and add each row's 128-bit digest (hex)."""
    import pyarrow as pa

    ids = [str(x) for x in batch["id"]]
    labels = np.asarray(batch["label"]).astype(np.int64)
    missing = [c for c in columns if c not in batch]
    if missing:
        raise DataError(f"rows lack the label column(s) {', '.join(missing)} their corpus declares",
                        item=ids[0] if ids else "corpus")
    pngs, digests = [], []
    for i, img in enumerate(iter_images(batch["image"])):
        img = np.asarray(img)
        if img.dtype != np.uint8 or img.ndim != 3:
            raise DataError(f"image must be uint8 HxWxC, got {img.dtype} {img.shape}", item=ids[i])
        if image_shape and tuple(img.shape) != tuple(image_shape):
            raise DataError(
                f"image shape {tuple(img.shape)} differs from the corpus image_shape {tuple(image_shape)}",
                item=ids[i],
            )
        pngs.append(encode_png(img))
        digests.append(f"{row_digest(ids[i], labels[i], img, extra=row_extras(batch, columns, i)):032x}")
    return pa.table(
        {
            "id": pa.array(ids, pa.string()),
            "label": pa.array(labels, pa.int64()),
            "image": pa.array(pngs, pa.binary()),
            **{c: pa.array(np.asarray(batch[c]).astype(np.int64), pa.int64()) for c in columns},
            "_digest": pa.array(digests, pa.string()),
        }
    )


def _sum_digests(batch: dict) -> dict:
    total = 0
    for h in batch["_digest"]:
        total = (total + int(h, 16)) % (1 << 128)
    return {"sum": np.array([f"{total:032x}"]), "n": np.array([len(batch["_digest"])], dtype=np.int64)}


def _sha256_file(fs, path: str) -> dict:
    h = hashlib.sha256()
    size = 0
    with fs.open_input_stream(path) as f:
        while True:
            chunk = f.read(1 << 20)
            if not chunk:
                break
            size += len(chunk)
            h.update(chunk)
    return {"name": os.path.basename(path), "bytes": size, "sha256": h.hexdigest()}


def _hash_files(fs, paths: list[str]) -> list[dict]:
    """sha256 and size of each file, one Ray task per file."""
    import ray

    from raypriv.runtime import TASK_OPTIONS

    task = ray.remote(num_cpus=0.5, **TASK_OPTIONS)(_sha256_file)
    return ray.get([task.remote(fs, p) for p in paths])


def _nonempty(fs, p: str) -> bool:
    import pyarrow.fs as pafs

    info = fs.get_file_info(p)
    if info.type == pafs.FileType.NotFound:
        return False
    if info.type != pafs.FileType.Directory:
        return True
    return bool(fs.get_file_info(pafs.FileSelector(p, recursive=False)))


class AtomicDir:
    """Build a local directory under a sibling temp name and rename it into place (used by every
    raypriv artifact writer: corpora, teachers, BN statistics)."""

    def __init__(self, target: str, *, overwrite: bool):
        self.target = target
        self.overwrite = overwrite
        parent, name = os.path.split(target)
        os.makedirs(parent, exist_ok=True)
        self.parent, self.name = parent, name
        self.tmp = os.path.join(parent, f".{name}.tmp-{secrets.token_hex(6)}")

    def __enter__(self) -> str:
        os.mkdir(self.tmp)
        return self.tmp

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            return False
        try:
            self._commit()
        except BaseException:
            shutil.rmtree(self.tmp, ignore_errors=True)
            raise
        return False

    def _commit(self) -> None:
        if not _local_nonempty(self.target):
            if os.path.isdir(self.target):
                os.rmdir(self.target)  # empty: replace it
            try:
                os.rename(self.tmp, self.target)
            except OSError as e:
                raise ArtifactError(f"{self.target}: cannot move output into place ({e})") from None
            return
        if not self.overwrite:
            raise ArtifactError(f"{self.target}: exists and is not empty; pass overwrite=True to replace it")
        old = os.path.join(self.parent, f".{self.name}.old-{secrets.token_hex(6)}")
        os.rename(self.target, old)
        try:
            os.rename(self.tmp, self.target)
        except BaseException:
            os.rename(old, self.target)
            raise
        if os.path.isdir(old):
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.remove(old)


def _local_nonempty(path: str) -> bool:
    if os.path.isdir(path):
        return bool(os.listdir(path))
    return os.path.lexists(path)


def _remove_partial(fs, p: str) -> None:
    """Best-effort removal of a failed non-local write (its manifest was never written)."""
    try:
        fs.delete_dir(p)
    except Exception:  # noqa: BLE001 - cleanup must not mask the original error
        pass


def _check_target(path: str, *, overwrite: bool) -> None:
    fs, p, _ = filesystem(path)
    if not overwrite and _nonempty(fs, p):
        raise ArtifactError(f"{path}: exists and is not empty; pass overwrite=True to replace it")


def _writer_fields(corpus: Corpus, *, rows: int, fingerprint: str, files: list[dict], t0: float) -> dict:
    from raypriv import __version__

    info = corpus.info
    return {
        "format": FORMAT,
        "rows": int(rows),
        "image_shape": list(info.image_shape),
        "num_classes": int(info.num_classes),
        "class_names": list(info.class_names),
        "classes_declared": bool(info.classes_declared),
        "label_name": info.label_name,
        "label_columns": [c.to_dict() for c in info.label_columns],
        "files": files,
        "fingerprint": fingerprint,
        "raypriv_version": __version__,
        "created_at": utc_now(),
        "wall_time_s": round(time.monotonic() - t0, 3),
    }


# ----------------------------------------------------------------------------- parquet

def _write_parquet_shards(
    corpus: Corpus, fs, dest: str, num_shards: int | None, *, rename: bool
) -> tuple[list[dict], str, int]:
    """Encode + write shards into ``dest``; returns (files, fingerprint, rows)."""
    from raypriv.runtime.execute import run

    shape = tuple(corpus.info.image_shape) if all(corpus.info.image_shape) else None
    enc = corpus.ds.map_batches(
        _encode_batch, batch_size=256, batch_format="numpy",
        fn_kwargs={"image_shape": shape, "columns": corpus.info.column_names()},
    )
    enc = run(enc, lambda d: d.materialize())  # the corpus is computed exactly once
    partial = enc.map_batches(_sum_digests, batch_size=None, batch_format="numpy")
    fingerprint, rows = sum_partials(run(partial, lambda d: d.take_all()))
    if rows == 0:
        raise DataError("refusing to write an empty corpus", item=corpus.info.source)
    out = enc.drop_columns(["_digest"])
    if num_shards is not None:
        out = out.repartition(num_shards)
    run(
        out,
        lambda d: d.write_parquet(dest, filesystem=fs, try_create_dir=True),
    )
    import pyarrow.fs as pafs

    infos = fs.get_file_info(pafs.FileSelector(dest, recursive=False))
    shard_paths = sorted(i.path for i in infos if i.path.endswith(".parquet"))
    if rename:  # our own fresh temp dir: give the shards stable names
        named = [f"{dest}/part-{k:05d}.parquet" for k in range(len(shard_paths))]
        for src, dst in zip(shard_paths, named):
            fs.move(src, dst)
        shard_paths = named
    return _hash_files(fs, shard_paths), fingerprint, rows


def write_corpus(
    corpus: Corpus,
    path: str,
    *,
    manifest: dict,
    num_shards: int | None = None,
    overwrite: bool = False,
) -> str:
    """Write ``corpus`` as Parquet shards (PNG images) plus ``manifest.json``; return ``path``.

    ``manifest`` is the caller's provenance (e.g. from
    :func:`raypriv.manifest.build_manifest`); the writer adds ``rows``, ``image_shape``,
    ``num_classes``, ``class_names``, ``files``, ``fingerprint`` (of the written content,
    equal to ``load_corpus("parquet:" + path).fingerprint()``), ``raypriv_version``,
    ``created_at`` and ``wall_time_s``. ``num_shards`` fixes the number of files (at most
    that many; default: one per block). An existing non-empty ``path`` is an
    :class:`~raypriv.errors.ArtifactError` unless ``overwrite=True``.
    """
    if not isinstance(manifest, dict):
        raise ConfigError("manifest", f"must be a dict, got {type(manifest).__name__}")
    if num_shards is not None and (isinstance(num_shards, bool) or not isinstance(num_shards, int) or num_shards < 1):
        raise ConfigError("num_shards", f"must be a positive integer or None, got {num_shards!r}")
    t0 = time.monotonic()
    _check_target(path, overwrite=overwrite)
    fs, p, local = filesystem(path)
    if local:
        with AtomicDir(p, overwrite=overwrite) as tmp:
            files, fingerprint, rows = _write_parquet_shards(corpus, fs, tmp, num_shards, rename=True)
            fields = _writer_fields(corpus, rows=rows, fingerprint=fingerprint, files=files, t0=t0)
            write_manifest(tmp, {**to_jsonable(manifest), **fields})
        return p
    # remote: clear (if overwriting), shards first, manifest last
    if overwrite and _nonempty(fs, p):
        fs.delete_dir_contents(p, missing_dir_ok=True)
    try:
        files, fingerprint, rows = _write_parquet_shards(corpus, fs, p, num_shards, rename=False)
    except BaseException:
        _remove_partial(fs, p)  # the prefix was empty before: nothing of anyone else's is lost
        raise
    fields = _writer_fields(corpus, rows=rows, fingerprint=fingerprint, files=files, t0=t0)
    write_manifest(path, {**to_jsonable(manifest), **fields})
    return path


# ----------------------------------------------------------------------------- imagefolder

def class_dirs(class_names: tuple[str, ...]) -> list[str]:
    """Folder names for classes: the sanitized names if sorting them keeps label order
    and they are unique, else ``<index>_<name>`` zero-padded so that
    ``imagefolder:`` reads the labels back unchanged."""
    names = [sanitize_name(c) for c in class_names]
    if names == sorted(names) and len(set(names)) == len(names):
        return names
    width = len(str(max(len(names) - 1, 0)))
    return [f"{i:0{width}d}_{n}" for i, n in enumerate(names)]


def file_name(row_id: str) -> str:
    """PNG file name for a row id: sanitized, with a trailing image extension dropped."""
    s = str(row_id)
    if s.lower().endswith(IMAGE_EXTENSIONS):
        s = s.rsplit(".", 1)[0]
    return sanitize_name(s) + ".png"


def _write_png_batch(batch: dict, *, fs, root: str, dirs: list[str], local: bool) -> dict:
    """map_batches UDF: write each row to ``root/<class dir>/<id>.png``; return the count."""
    ids = [str(x) for x in batch["id"]]
    labels = np.asarray(batch["label"]).astype(np.int64)
    for i, img in enumerate(iter_images(batch["image"])):
        label = int(labels[i])
        if not 0 <= label < len(dirs):
            raise DataError(f"label {label} out of range [0, {len(dirs)})", item=ids[i])
        target = f"{root}/{dirs[label]}/{file_name(ids[i])}"
        data = encode_png(np.asarray(img))
        if local:
            try:
                with open(target, "xb") as f:  # exclusive: catch ids that sanitize alike
                    f.write(data)
            except FileExistsError:
                raise DataError(
                    f"file {target!r} already written by another id (ids collide after sanitizing)",
                    item=ids[i],
                ) from None
        else:
            with fs.open_output_stream(target) as f:
                f.write(data)
    return {"n": np.array([len(ids)], dtype=np.int64)}


def _export_into(corpus: Corpus, fs, root: str, local: bool) -> int:
    from raypriv.runtime.execute import run

    dirs = class_dirs(tuple(corpus.info.class_names))
    for d in dirs:
        fs.create_dir(f"{root}/{d}", recursive=True)
    counts = corpus.ds.map_batches(
        _write_png_batch,
        batch_size=256,
        batch_format="numpy",
        fn_kwargs={"fs": fs, "root": root, "dirs": dirs, "local": local},
    )
    return int(sum(r["n"] for r in run(counts, lambda d: d.take_all())))


def export_imagefolder(corpus: Corpus, path: str, *, overwrite: bool = False) -> str:
    """Write ``corpus`` as a PNG tree ``path/<class_name>/<id-sanitized>.png``; return ``path``.

    Folder names are the sanitized class names (prefixed with the label index when
    sorting the names would change the label order), so ``load_corpus("imagefolder:" +
    path)`` gives back the same labels and pixels. A ``manifest.json`` at the top lists
    rows, classes, folders and the corpus fingerprint. Atomic for local paths, like
    :func:`write_corpus`.
    """
    t0 = time.monotonic()
    _check_target(path, overwrite=overwrite)
    fs, p, local = filesystem(path)

    def _manifest(rows: int) -> dict:
        from raypriv import __version__

        info = corpus.info
        return {
            "format": "imagefolder",
            "source": info.source,
            "rows": rows,
            "image_shape": list(info.image_shape),
            "num_classes": info.num_classes,
            "class_names": list(info.class_names),
            "class_dirs": class_dirs(tuple(info.class_names)),
            "fingerprint": corpus.fingerprint(),
            "raypriv_version": __version__,
            "created_at": utc_now(),
            "wall_time_s": round(time.monotonic() - t0, 3),
        }

    if local:
        with AtomicDir(p, overwrite=overwrite) as tmp:
            rows = _export_into(corpus, fs, tmp, True)
            write_manifest(tmp, _manifest(rows))
        return p
    if overwrite and _nonempty(fs, p):
        fs.delete_dir_contents(p, missing_dir_ok=True)
    try:
        rows = _export_into(corpus, fs, p, False)
    except BaseException:
        _remove_partial(fs, p)
        raise
    write_manifest(path, _manifest(rows))
    return path


__all__ = ["write_corpus", "export_imagefolder", "class_dirs", "MANIFEST_NAME"]
