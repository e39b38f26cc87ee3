"""The victim trainer's data: workers split the rows by id hash, shuffle their whole share every
epoch, and the same seed trains the same model whatever order Ray Data delivers the blocks in."""
import numpy as np
import pytest
import torch

from raypriv.data import Corpus, load_corpus
from raypriv.errors import DataError
from raypriv.classifier import VictimConfig
from raypriv.classifier.train import epoch_batches, train_victim
from raypriv.shards import SHARD_SALT, load_shard
from raypriv.hashing import id_uniform
from raypriv.runtime import ResourceSpec


@pytest.fixture(scope="module")
def digits(ray_local):
    return load_corpus("digits", split="train").head(300)


def _reordered(corpus: Corpus, *, reverse: bool, blocks: int) -> Corpus:
    """The same rows, in another order and another block split."""
    import ray

    rows = sorted(corpus.ds.take_all(), key=lambda r: r["id"], reverse=reverse)
    return Corpus(ds=ray.data.from_items(rows, override_num_blocks=blocks).materialize(), info=corpus.info)


def test_the_shard_is_ordered_by_id_whatever_the_block_order(digits):
    a_images, a_labels = load_shard(_reordered(digits, reverse=False, blocks=3).ds)
    b_images, b_labels = load_shard(_reordered(digits, reverse=True, blocks=7).ds)
    assert a_images.dtype == torch.uint8 and tuple(a_images.shape) == (300, 8, 8, 1)
    assert torch.equal(a_images, b_images) and torch.equal(a_labels, b_labels)


def test_workers_split_the_rows_by_id_the_same_way_whatever_the_block_order(digits):
    a = [load_shard(_reordered(digits, reverse=False, blocks=3).ds, rank=r, world=2) for r in (0, 1)]
    b = [load_shard(_reordered(digits, reverse=True, blocks=5).ds, rank=r, world=2) for r in (0, 1)]
    assert all(torch.equal(x[0], y[0]) for x, y in zip(a, b))
    sizes = [len(labels) for _, labels in a]
    assert sum(sizes) == 300 and min(sizes) > 100       # every row once, split about evenly
    whole = load_shard(digits.ds)[0].reshape(300, -1)
    mixed = torch.cat([a[0][0], a[1][0]]).reshape(300, -1)
    assert sorted(map(bytes, whole.numpy())) == sorted(map(bytes, mixed.numpy()))


def test_a_worker_without_rows_is_a_clear_error(digits):
    one = digits.head(1)
    owner = int(id_uniform([one.ds.take(1)[0]["id"]], seed=0, salt=SHARD_SALT)[0] * 2)
    assert len(load_shard(one.ds, rank=owner, world=2)[1]) == 1
    with pytest.raises(DataError, match="no rows for worker"):
        load_shard(one.ds, rank=1 - owner, world=2)


def test_every_epoch_is_a_fresh_permutation_that_mixes_the_classes():
    labels = torch.arange(10).repeat_interleave(100)       # class-sorted, as generated corpora are written
    gen = torch.Generator().manual_seed(0)
    first = epoch_batches(1000, batch_size=64, drop_last=False, gen=gen)
    second = epoch_batches(1000, batch_size=64, drop_last=False, gen=gen)
    assert sorted(torch.cat(first).tolist()) == list(range(1000))
    assert not torch.equal(torch.cat(first), torch.cat(second))
    assert all(len(set(labels[b].tolist())) >= 8 for b in first[:5])   # a stream would give 1-2 classes
    dropped = epoch_batches(1000, batch_size=64, drop_last=True, gen=gen)
    assert [len(b) for b in dropped] == [64] * 15
    longer = torch.cat(epoch_batches(30, batch_size=8, drop_last=False, gen=gen, rows_per_epoch=45))
    assert len(longer) == 45 and sorted(longer[:30].tolist()) == list(range(30))   # a second permutation follows
    shorter = torch.cat(epoch_batches(30, batch_size=8, drop_last=False, gen=gen, rows_per_epoch=20))
    assert len(set(shorter.tolist())) == 20


@pytest.mark.parametrize("workers", [2])      # 2 workers: each shard, and the order within it, must not move
def test_the_same_seed_trains_the_same_model_from_differently_ordered_blocks(digits, workers, tmp_path):
    test = load_corpus("digits", split="test").head(100)
    kw = dict(config=VictimConfig(model="plain_cnn", optimizer="adam", lr=1e-3, epochs=2, batch_size=32),
              resources=ResourceSpec(workers=workers), storage_path=str(tmp_path))
    runs = [train_victim(_reordered(digits, reverse=r, blocks=b), test, **kw) for r, b in ((False, 3), (True, 6))]
    assert runs[0].history == runs[1].history and runs[0].test_acc == runs[1].test_acc
    assert np.isfinite(runs[0].history[-1]["loss"])
