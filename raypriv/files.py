"""Creating a file that must not exist yet, atomically and durably.

>>> import os, tempfile
>>> from raypriv.files import write_new
>>> path = os.path.join(tempfile.mkdtemp(), "f")
>>> write_new(path, b"first"), write_new(path, b"second"), open(path, "rb").read()
(True, False, b'first')
"""
from __future__ import annotations

import os


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
