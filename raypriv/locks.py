"""One run at a time per output directory: an exclusive advisory lock held for the whole run.

>>> import tempfile
>>> from raypriv.locks import exclusive_run
>>> d = tempfile.mkdtemp()
>>> with exclusive_run(d):
...     with exclusive_run(d):
...         pass
Traceback (most recent call last):
...
raypriv.errors.ArtifactError: ...: another run holds this directory (lock .raypriv.lock); wait for it to finish, or stop it first
"""
from __future__ import annotations

import contextlib
import fcntl
import os

from raypriv.errors import ArtifactError

LOCK_NAME = ".raypriv.lock"


@contextlib.contextmanager
def exclusive_run(directory: str):
    """Hold ``directory/.raypriv.lock`` exclusively (``flock``) until the block ends; raise
    :class:`~raypriv.errors.ArtifactError` at once if another process (or another block of
    this one) holds it. The lock dies with its holder, so a crashed run never leaves it stuck."""
    os.makedirs(directory, exist_ok=True)
    fd = os.open(os.path.join(directory, LOCK_NAME), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ArtifactError(f"{directory}: another run holds this directory (lock {LOCK_NAME}); wait for it "
                                "to finish, or stop it first") from None
        yield
    finally:
        os.close(fd)
