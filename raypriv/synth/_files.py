"""Small local-file helpers shared by the synth artifacts."""
from __future__ import annotations

import contextlib
import os
import secrets
import shutil

from raypriv.errors import ConfigError


@contextlib.contextmanager
def atomic_dir(output: str):
    """Yield a temporary sibling directory of ``output``; on success it replaces ``output``.

    On any error the temporary directory is removed and ``output`` is left as it was, so a
    crash never leaves a directory that looks complete."""
    if "://" in str(output):
        raise ConfigError("output", f"this artifact is written to a local directory, got {output!r}")
    final = os.path.abspath(os.path.expanduser(output))
    parent = os.path.dirname(final)
    os.makedirs(parent, exist_ok=True)
    tmp = os.path.join(parent, f".{os.path.basename(final)}.tmp-{secrets.token_hex(4)}")
    os.makedirs(tmp)
    try:
        yield tmp
        if os.path.exists(final):
            shutil.rmtree(final)
        os.replace(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
