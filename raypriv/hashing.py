"""Stateless, order-independent randomness keyed by row id.

Every random choice that concerns a row (its initial noise, whether it is sampled
in a round, whether it is protected in a partial release) is derived from a hash of
``(seed, salt, id)``, so it is the same however the corpus is sharded, shuffled,
retried or resumed.

>>> from raypriv.hashing import id_uniform
>>> u = id_uniform(["a", "b"], seed=0, salt="x")
>>> bool(((u >= 0) & (u < 1)).all()), bool(id_uniform(["a"], seed=0, salt="x")[0] == u[0])
(True, True)
"""
from __future__ import annotations

import hashlib

import numpy as np


def id_digest(row_id: str, *, seed: int, salt: str = "") -> bytes:
    return hashlib.blake2b(f"{seed}\x1f{salt}\x1f{row_id}".encode(), digest_size=16).digest()


def id_uniform(ids, *, seed: int, salt: str = "") -> np.ndarray:
    """A uniform [0, 1) number per id, a pure function of ``(seed, salt, id)``."""
    return np.array([int.from_bytes(id_digest(str(i), seed=seed, salt=salt)[:8], "little") / 2**64 for i in ids],
                    dtype=np.float64)


def id_rng(row_id: str, *, seed: int, salt: str = "") -> np.random.Generator:
    """A NumPy generator seeded from ``(seed, salt, id)``."""
    return np.random.default_rng(int.from_bytes(id_digest(row_id, seed=seed, salt=salt), "little"))


def task_seed(seed: int, label: int, batch_index: int) -> int:
    """The seed of one generation task: a hash of ``(seed, label, batch_index)`` (31 bits)."""
    digest = hashlib.blake2b(f"{seed}/{label}/{batch_index}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & 0x7FFFFFFF
