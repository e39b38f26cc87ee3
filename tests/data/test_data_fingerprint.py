"""The fingerprint is order- and sharding-independent and content-sensitive."""
import numpy as np
import pytest

from raypriv.data import Corpus, load_corpus

pytestmark = pytest.mark.usefixtures("ray_local")


def test_fingerprint_order_independent_and_sensitive():
    def _bump_one_pixel(batch):  # nested: Ray pickles it by value
        img = np.array(batch["image"], copy=True)
        for k, i in enumerate(batch["id"]):
            if i == "digits/test/00123":
                img[k, 3, 4, 0] ^= 1
        return {**batch, "image": img}

    c = load_corpus("digits", split="test")
    fp = c.fingerprint()
    assert len(fp) == 32 and c.fingerprint() == fp  # cached
    shuffled = Corpus(ds=c.ds.random_shuffle(seed=1), info=c.info)
    assert shuffled.fingerprint() == fp
    assert Corpus(ds=c.ds.repartition(5), info=c.info).fingerprint() == fp
    changed = Corpus(ds=c.ds.map_batches(_bump_one_pixel, batch_format="numpy"), info=c.info)
    assert changed.fingerprint() != fp
    other = load_corpus("digits", split="train")
    assert other.fingerprint() != fp
