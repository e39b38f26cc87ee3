"""Worker shards by id hash (:mod:`raypriv.shards`): every row in exactly one shard, for any
number of rows and workers, whatever the block order; a key changes the assignment."""
import pytest

from raypriv.errors import DataError
from raypriv.shards import load_shard, shard_of


def _rows(n: int, blocks: int):
    import numpy as np
    import ray

    rows = [{"id": f"row-{i:04d}", "image": np.full((1, 1, 1), i % 256, dtype=np.uint8), "label": i}
            for i in range(n)]
    return ray.data.from_items(rows, override_num_blocks=min(blocks, n)).materialize()


@pytest.mark.parametrize("n", [1, 7, 64, 101])
def test_no_row_is_dropped_or_repeated_for_any_rows_and_workers(ray_local, n):
    """Ray Train's equal split drops up to W - 1 rows; these shards hold all N, each once."""
    ds = _rows(n, blocks=3)
    for world in (1, 2, 3, 4):
        seen = []
        for rank in range(world):
            try:
                seen += load_shard(ds, rank=rank, world=world, key=12345)[1].tolist()
            except DataError as e:
                assert "no rows for worker" in str(e) and n < 2 * world    # only when rows are few
        assert sorted(seen) == list(range(n)), (n, world)


def test_the_key_changes_the_assignment_and_the_same_key_repeats_it():
    ids = [f"row-{i}" for i in range(400)]
    a, b, c = (shard_of(ids, world=2, key=k) for k in (1, 1, 2))
    assert (a == b).all() and (a != c).any()
    assert 150 < int(a.sum()) < 250                     # about half each
