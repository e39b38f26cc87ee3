"""Partial protection mixes: deterministic, hash-selected, no join."""
import dataclasses

import numpy as np
import pytest

from tests.evaluate.eval_synthetic import corpus, images, protect
from raypriv.errors import ConfigError, DataError
from raypriv.evaluate import mix_partial
from raypriv.evaluate.partial import protected_mask


@pytest.fixture(scope="module")
def pair(ray_local):
    x, y = images(200, seed=7)
    return (corpus(x, y, split="train", source="clean"),
            corpus(protect(x, y), y, split="train", source="prot"))


def _protected_ids(mixed, clean) -> set:
    """Ids whose image differs from the clean one (the tint changes every image)."""
    orig = {r["id"]: np.asarray(r["image"]) for r in clean.ds.take_all()}
    rows = mixed.ds.take_all()
    ids = [r["id"] for r in rows]
    assert sorted(ids) == sorted(orig), "every id exactly once"
    return {r["id"] for r in rows if (np.asarray(r["image"]) != orig[r["id"]]).any()}


def test_fraction_zero_one_and_half(pair):
    clean, prot = pair
    all_ids = {r["id"] for r in clean.ds.take_all()}
    assert _protected_ids(mix_partial(clean, prot, 0.0, seed=0), clean) == set()
    assert _protected_ids(mix_partial(clean, prot, 1.0, seed=0), clean) == all_ids
    half = mix_partial(clean, prot, 0.5, seed=0)
    got = _protected_ids(half, clean)
    ids = sorted(all_ids)
    expected = {i for i, m in zip(ids, protected_mask(ids, fraction=0.5, seed=0)) if m}
    assert got == expected and 70 <= len(got) <= 130
    assert half.info.num_rows == 200 and "fraction=0.5" in half.info.source
    assert _protected_ids(mix_partial(clean, prot, 0.5, seed=0), clean) == got  # deterministic
    assert _protected_ids(mix_partial(clean, prot, 0.5, seed=1), clean) != got  # seed matters


def test_fractions_are_nested(pair):
    ids = [f"r{i:05d}" for i in range(500)]
    small, big = (protected_mask(ids, fraction=f, seed=3) for f in (0.2, 0.6))
    assert (small <= big).all() and 0.1 < small.mean() < 0.3 and 0.5 < big.mean() < 0.7


def test_mismatched_corpora_are_rejected(pair):
    clean, prot = pair
    fewer = dataclasses.replace(prot.info, num_rows=150)
    with pytest.raises(DataError, match="150 rows"):
        mix_partial(clean, type(prot)(ds=prot.ds, info=fewer), 0.5, seed=0)
    other = dataclasses.replace(prot.info, image_shape=(16, 16, 3))
    with pytest.raises(DataError, match="image shape"):
        mix_partial(clean, type(prot)(ds=prot.ds, info=other), 0.5, seed=0)
    with pytest.raises(ConfigError) as e:
        mix_partial(clean, prot, 1.5, seed=0)
    assert e.value.field == "fraction"
