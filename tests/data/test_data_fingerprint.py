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


def _without(corpus: Corpus, row_id: str) -> Corpus:
    ds = corpus.ds.filter(lambda r: r["id"] != row_id).materialize()
    return Corpus(ds=ds, info=corpus.info)


def test_the_unkeyed_fingerprint_is_a_membership_oracle_and_the_keyed_one_is_not():
    """fp(D) − fp(D′) is the missing row's digest, which anyone can compute from a candidate
    record; under the owner's key the difference is no such digest, and another key gives
    another fingerprint."""
    from raypriv.data.corpus import _MOD, row_digest

    c = load_corpus("digits", split="test")
    victim = c.ds.take(1)[0]
    d_prime = _without(c, victim["id"])
    candidate = row_digest(victim["id"], victim["label"], victim["image"])
    assert (int(c.fingerprint(), 16) - int(d_prime.fingerprint(), 16)) % _MOD == candidate   # the oracle

    keyed, keyed_prime = c.keyed_fingerprint(), d_prime.keyed_fingerprint()
    assert keyed.startswith("hmac-sha256:") and keyed != keyed_prime
    diff = (int(keyed.rsplit(":", 1)[1], 16) - int(keyed_prime.rsplit(":", 1)[1], 16)) % _MOD
    assert diff != candidate and c.fingerprint() not in keyed
    other_key = c.keyed_fingerprint(key=b"another owner's key, 32 bytes...")
    assert other_key != keyed and other_key.split(":")[1] != keyed.split(":")[1]     # the key id differs too
    assert c.keyed_fingerprint() == keyed == Corpus(ds=c.ds.random_shuffle(seed=3), info=c.info).keyed_fingerprint()


def test_the_default_key_is_the_owner_key_file(tmp_path, monkeypatch):
    from raypriv.privacy.keys import owner_key

    c = load_corpus("digits", split="test").head(50)
    assert c.keyed_fingerprint() == c.keyed_fingerprint(key=owner_key())
    monkeypatch.setenv("RAYPRIV_KEY_FILE", str(tmp_path / "another.key"))
    assert c.keyed_fingerprint() != c.keyed_fingerprint(key=b"x" * 32) and \
        c.keyed_fingerprint() == c.keyed_fingerprint(key=(tmp_path / "another.key").read_bytes())


def test_the_owner_key_is_created_once_private_and_reused(tmp_path, monkeypatch):
    import os
    import stat

    from raypriv.privacy.keys import owner_key

    path = tmp_path / "keys" / "owner.key"
    monkeypatch.setenv("RAYPRIV_KEY_FILE", str(path))
    key = owner_key()
    assert len(key) == 32 and owner_key() == key
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert not [p for p in os.listdir(path.parent) if p.endswith(".tmp")]
