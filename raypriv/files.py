"""Writing files atomically: a file that must not exist yet (durably), JSON and figures.

>>> import os, tempfile
>>> from raypriv.files import write_new
>>> path = os.path.join(tempfile.mkdtemp(), "f")
>>> write_new(path, b"first"), write_new(path, b"second"), open(path, "rb").read()
(True, False, b'first')
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
import enum
import json
import math
import os
import pathlib
import tempfile
from typing import Any


def local_dir(path: str, *, what: str = "output") -> str:
    """``path`` as an absolute local directory (``~`` expanded). Artifact directories are
    local or mounted (shared) paths; a URI (``s3://``, ``gs://`` ...) is refused with a clear
    error rather than silently turned into a local path. Corpora are the exception: a
    corpus may be read from and written to a pyarrow URI (:mod:`raypriv.data.writer`).

    >>> local_dir("s3://bucket/run")
    Traceback (most recent call last):
    ...
    raypriv.errors.ConfigError: invalid output: 's3://bucket/run' is a URI; this artifact is written to a local or mounted (shared) directory: pass a path
    """
    if "://" in str(path):
        from raypriv.errors import ConfigError

        raise ConfigError(what, f"{path!r} is a URI; this artifact is written to a local or mounted (shared) "
                                "directory: pass a path")
    return os.path.abspath(os.path.expanduser(str(path)))


def write_new(path: str, data: bytes, *, mode: int = 0o644) -> bool:
    """Write ``data`` to ``path`` only if ``path`` does not exist; return whether this call
    created it. The content is written to a temporary file and fsync-ed first, then hard-linked
    into place, so a reader never sees a partial file and of two racing writers exactly one
    wins. On file systems without hard links it falls back to an ``O_EXCL`` create."""
    tmp = f"{path}.{os.getpid()}.{os.urandom(4).hex()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, path)
            return True
        except FileExistsError:
            return False
        except OSError:                     # no hard links here
            pass
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        except FileExistsError:
            return False
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        return True
    finally:
        os.remove(tmp)


def to_jsonable(obj: Any) -> Any:
    """Convert ``obj`` to plain JSON types.

    Dataclasses become dicts, tuples and sets become lists, numpy scalars and arrays
    become Python numbers and lists, paths become strings, enums their value, bytes
    their hex, datetimes ISO strings, and non-finite floats ``None`` (JSON has no NaN).
    Anything else is a ``TypeError``, never its ``repr`` string: manifests and reports hold
    structured values only.

    >>> import dataclasses, numpy as np
    >>> @dataclasses.dataclass
    ... class C:
    ...     sizes: tuple = (1, 2)
    >>> to_jsonable({"config": C(), "a": (1, np.int64(2)), 3: np.float32(0.5), "n": np.arange(2)})
    {'config': {'sizes': [1, 2]}, 'a': [1, 2], '3': 0.5, 'n': [0, 1]}
    """
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, (set, frozenset)):
        return sorted((to_jsonable(v) for v in obj), key=repr)
    if isinstance(obj, enum.Enum):
        return to_jsonable(obj.value)
    if isinstance(obj, (pathlib.PurePath,)):
        raise TypeError(f"{type(obj).__name__} is not a JSON value: {obj!r}")
    if isinstance(obj, (bytes, bytearray)):
        return bytes(obj).hex()
    if isinstance(obj, (_dt.datetime, _dt.date)):
        return obj.isoformat()
    # numpy without importing it: scalars have .item(), arrays .tolist()
    if hasattr(obj, "tolist") and hasattr(obj, "dtype"):
        return to_jsonable(obj.tolist())
    if hasattr(obj, "item") and hasattr(obj, "dtype"):
        return to_jsonable(obj.item())
    raise TypeError(f"{type(obj).__name__} is not a JSON value: {obj!r}")


def _replace_atomically(path: str, suffix: str, write) -> str:
    """Call ``write(tmp_path)`` on a temporary file beside ``path``, then ``os.replace`` it into place."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=suffix, dir=directory)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def write_json_atomic(path: str, obj: Any) -> str:
    """Write ``obj`` (:func:`to_jsonable`) as JSON to ``path`` via a temporary file and ``os.replace``."""
    obj = to_jsonable(obj)

    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(obj, f, indent=2, sort_keys=False, allow_nan=False)
            f.write("\n")

    return _replace_atomically(path, ".json", write)


def write_durable(path: str, data: bytes) -> str:
    """:func:`_replace_atomically`, fsync-ing the file before the rename and the directory after:
    once this returns the file survives a crash (a record that must exist before the work it
    stands for starts)."""
    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())

    _replace_atomically(path, ".tmp", write)
    fd = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    return path


def write_text_atomic(path: str, text: str) -> str:
    """Write ``text`` (UTF-8) to ``path`` via a temporary file and ``os.replace``."""

    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)

    return _replace_atomically(path, os.path.splitext(path)[1] or ".txt", write)


def save_figure(fig, path: str) -> str:
    """Save a matplotlib figure as PNG at ``path`` atomically (temporary file, then rename)."""
    return _replace_atomically(path, ".png", lambda tmp: fig.savefig(tmp, format="png"))
