"""Where raypriv reads and writes: a local (or mounted) path, or a pyarrow filesystem URI
(``s3://bucket/prefix``, ``gs://…``, ``file://…``).

Corpora, their manifests and the run storage of Ray Train and Tune (checkpoints, trial state)
may live at a URI; directories that need a POSIX filesystem (a privacy ledger appended with
fsync under a lock, key files with their permissions, reports) are local or mounted, and
:func:`raypriv.files.local_dir` refuses a URI for them. An S3-compatible server other than AWS
is reached the way the AWS tools reach one, through ``AWS_ENDPOINT_URL`` in the environment
of the driver and of every Ray worker.

>>> is_uri("s3://bucket/run"), is_uri("/data/run")
(True, False)
>>> join("s3://bucket/run/", "model", "state.pt")
's3://bucket/run/model/state.pt'
>>> location("s3://bucket/run/", what="checkpoints")
's3://bucket/run'
>>> location("nope://x", what="checkpoints")
Traceback (most recent call last):
...
raypriv.errors.ConfigError: invalid checkpoints: 'nope://x': nope:// is not a filesystem pyarrow can open; use one of s3://, gs://, gcs://, file://, hdfs://, viewfs://, abfs://, abfss:// or a path
"""
from __future__ import annotations

import os
from typing import Any

__all__ = ["exists", "filesystem", "is_uri", "join", "location", "read_bytes", "remove_tree", "subdirectories",
           "write_text"]


def is_uri(path: str) -> bool:
    return "://" in str(path)


def join(base: str, *parts: str) -> str:
    """``base/part/…``: ``/`` for URIs, ``os.path.join`` for local paths."""
    if is_uri(base):
        return "/".join([str(base).rstrip("/"), *(p.strip("/") for p in parts)])
    return os.path.join(base, *parts)


def filesystem(path: str) -> tuple[Any, str, bool]:
    """``(pyarrow filesystem, path inside it, is_local)`` of ``path``."""
    import pyarrow.fs as pafs

    if is_uri(path):
        fs, p = pafs.FileSystem.from_uri(str(path))
        return fs, p.rstrip("/"), isinstance(fs, pafs.LocalFileSystem)
    return pafs.LocalFileSystem(), os.path.abspath(os.path.expanduser(str(path))), True


#: URI schemes of the filesystems pyarrow ships (checked without touching the network).
SCHEMES = ("s3", "gs", "gcs", "file", "hdfs", "viewfs", "abfs", "abfss")


def location(path: str, *, what: str) -> str:
    """A storage location for Ray Train/Tune: a URI of a filesystem pyarrow ships, as given; a
    local path, absolute. Any other URI is a ConfigError naming ``what``."""
    if not is_uri(path):
        from raypriv.files import local_dir

        return local_dir(path, what=what)
    from raypriv.errors import ConfigError

    scheme = str(path).split("://", 1)[0]
    if scheme not in SCHEMES:
        raise ConfigError(what, f"{path!r}: {scheme}:// is not a filesystem pyarrow can open; use one of "
                                f"{', '.join(s + '://' for s in SCHEMES)} or a path")
    if "?" in str(path):
        raise ConfigError(what, f"{path!r}: options in the URI are not supported here (paths are joined onto it); "
                                "set them in the environment, e.g. AWS_ENDPOINT_URL")
    return str(path).rstrip("/")


def exists(path: str) -> bool:
    import pyarrow.fs as pafs

    fs, p, _ = filesystem(path)
    return fs.get_file_info(p).type != pafs.FileType.NotFound


def subdirectories(path: str) -> list[str]:
    """Names of the directories right under ``path`` (none if it does not exist)."""
    import pyarrow.fs as pafs

    fs, p, _ = filesystem(path)
    if fs.get_file_info(p).type != pafs.FileType.Directory:
        return []
    return sorted(i.base_name for i in fs.get_file_info(pafs.FileSelector(p)) if i.type == pafs.FileType.Directory)


def read_bytes(path: str) -> bytes:
    fs, p, _ = filesystem(path)
    with fs.open_input_stream(p) as f:
        return f.read()


def write_text(path: str, text: str) -> None:
    """Write ``text`` (UTF-8) to the file or object ``path``, whole or not at all and durably
    once this returns: a local file fsync-ed through a temporary file and a rename (its
    directory made), an object in one upload."""
    fs, p, local = filesystem(path)
    if local:
        from raypriv.files import write_durable

        write_durable(p, text.encode("utf-8"))
        return
    with fs.open_output_stream(p) as f:
        f.write(text.encode("utf-8"))


def remove_tree(path: str) -> None:
    """Delete the directory (or URI prefix) ``path`` and everything under it, if it exists."""
    if exists(path):
        fs, p, _ = filesystem(path)
        fs.delete_dir(p)
