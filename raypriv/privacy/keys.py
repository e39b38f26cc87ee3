"""The data owner's key: what makes fingerprints of private data safe to publish.

An artifact records which input it came from by a *fingerprint* of that corpus. An unkeyed
fingerprint of private data is a membership oracle: with the additive, order-independent
construction raypriv uses, ``fp(D) - fp(D')`` is the digest of the one row that differs,
which anyone can compute from a candidate record. So every fingerprint of a technique's
*input* is keyed: each row digest is an HMAC-SHA256 under the owner's key
(:meth:`raypriv.data.Corpus.keyed_fingerprint`). Without the key the value says nothing
about any record; with it the owner can still tell which data an artifact came from, and
the same key gives the same fingerprint across runs and machines.

The key is 32 random bytes in a file that stays with the data owner, never in an output:

* ``RAYPRIV_KEY_FILE`` names the file; default ``~/.raypriv/owner.key``;
* the first use creates it (mode 0600, atomically: two processes racing both end up with
  the one that won). Copy it to every machine that should produce comparable fingerprints
  (a cluster's head node runs the driver that computes them). Losing it loses nothing but
  the ability to match new fingerprints with old ones.

Fingerprints name the key by :func:`key_id` (a hash of the key, which reveals nothing of it):
``hmac-sha256:<key id>:<32 hex digits>``.

>>> import os, tempfile
>>> from raypriv.privacy.keys import owner_key, key_id
>>> os.environ["RAYPRIV_KEY_FILE"] = os.path.join(tempfile.mkdtemp(), "owner.key")
>>> k = owner_key()
>>> len(k), owner_key() == k, len(key_id(k))
(32, True, 8)
>>> del os.environ["RAYPRIV_KEY_FILE"]
"""
from __future__ import annotations

import hashlib
import os

from raypriv.errors import ConfigError

KEY_FILE_ENV = "RAYPRIV_KEY_FILE"
DEFAULT_KEY_FILE = os.path.join("~", ".raypriv", "owner.key")
KEY_BYTES = 32


def key_path() -> str:
    return os.path.abspath(os.path.expanduser(os.environ.get(KEY_FILE_ENV) or DEFAULT_KEY_FILE))


def owner_key() -> bytes:
    """The data owner's key (created on first use; see the module docstring)."""
    path = key_path()
    if not os.path.exists(path):
        _create(path)
    with open(path, "rb") as f:
        key = f.read()
    if len(key) < 16:
        raise ConfigError(KEY_FILE_ENV, f"{path}: a raypriv key file holds at least 16 bytes, this one {len(key)}")
    return key


def key_id(key: bytes) -> str:
    """A public name of ``key``: 8 hex digits of a domain-separated hash."""
    return hashlib.sha256(b"raypriv-key-id\0" + key).hexdigest()[:8]


def _create(path: str) -> None:
    from raypriv.files import write_new

    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    write_new(path, os.urandom(KEY_BYTES), mode=0o600)     # a racing process may win: its key is the key
