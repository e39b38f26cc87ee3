"""Worker shards for Ray Train: every row in exactly one worker's shard, chosen by a hash of
its id.

Ray Train's ``streaming_split(equal=True)`` drops up to ``W - 1`` rows, and which ones
depends on the row count and block order, so one record added can push another out (for DP
that turns the guarantee into group privacy of ``W`` records). Here instead every worker
reads the whole dataset once and keeps the rows whose id hashes to its rank: no row is
dropped, copies of a row (same id) stay together, and the shard (ordered by id) is the same
whatever order the blocks arrive in. ``key`` makes the assignment secret (the DP-VAE loop
draws a fresh one per run from :func:`raypriv.privacy.rng.secret_seed`) or fixed (``0``:
reproducible evaluation runs). ``tests/test_shards.py`` checks every row lands once for
any number of rows and workers.

>>> from raypriv.shards import shard_of
>>> ranks = shard_of([f"row-{i}" for i in range(1000)], world=3, key=7)
>>> sorted(set(ranks.tolist())), int((ranks == 0).sum()) + int((ranks == 1).sum()) + int((ranks == 2).sum())
([0, 1, 2], 1000)
"""
from __future__ import annotations

from raypriv.errors import DataError

#: Rows per read when a worker loads its shard into memory.
SHARD_READ_BATCH = 1024
#: Salt of the id hash that assigns rows to workers (named when only the evaluation classifier
#: split by id; changing it changes which rows each of its workers holds, and so its figures).
SHARD_SALT = "victim-shard"


def shard_of(ids, *, world: int, key: int = 0):
    """The rank (0..world-1) that owns each id: ``floor(u * world)``, ``u`` a keyed hash of the id.

    >>> shard_of(["a", "b", "c"], world=1).tolist()
    [0, 0, 0]
    """
    import numpy as np

    from raypriv.hashing import id_uniform

    return np.minimum((id_uniform(ids, seed=key, salt=SHARD_SALT) * world).astype(np.int64), world - 1)


def load_shard(rows, *, rank: int = 0, world: int = 1, key: int = 0, what: str = "training set",
               columns: tuple[str, ...] | None = None) -> tuple:
    """Worker ``rank``'s share of ``rows`` as in-memory ``(images uint8 (N, H, W, C), labels
    int64 (N,))`` tensors, ordered by row id; with ``columns``, ``labels`` is ``(N, len(columns))``
    and holds those integer columns (a multi-task set: ``("label", "parity", "key_mask")``).

    ``rows`` is anything with Ray Data's ``iter_batches`` (a ``DataIterator`` or a ``Dataset``)
    over ``{id, image, label}`` rows; every worker reads all of it (:func:`shard_of` picks).
    A worker that gets no row raises :class:`~raypriv.errors.DataError` naming ``what``."""
    import numpy as np
    import torch

    ids, images, labels = [], [], []
    for batch in rows.iter_batches(batch_size=SHARD_READ_BATCH, batch_format="numpy"):
        batch_ids = np.asarray(batch["id"]).astype(str)
        mine = shard_of(batch_ids, world=world, key=key) == rank
        ids.append(batch_ids[mine])
        images.append(np.asarray(batch["image"], dtype=np.uint8)[mine])
        if columns is None:
            labels.append(np.asarray(batch["label"], dtype=np.int64)[mine])
        else:
            labels.append(np.stack([np.asarray(batch[c], dtype=np.int64) for c in columns], axis=1)[mine])
    if not sum(len(i) for i in ids):
        raise DataError(f"no rows for worker {rank} of {world} (rows are split by a hash of their id: "
                        "use fewer workers than distinct ids)", item=what)
    order = np.argsort(np.concatenate(ids), kind="stable")
    return torch.from_numpy(np.concatenate(images)[order]), torch.from_numpy(np.concatenate(labels)[order])

