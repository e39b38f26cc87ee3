"""Trigger-keys: secret, bounded, combinable, kept in a 0600 file and matched to their model."""
import os

import numpy as np
import pytest

from raypriv.errors import ConfigError
from raypriv.mtk.keys import KeyFileError, KeySet, KeySpec, apply_patterns, check_digests, key_digests, new_salt

SHAPE = (28, 28, 1)


def test_full_keys_are_fresh_bounded_sign_patterns():
    a = KeySet.generate(("digit", "parity"), image_shape=SHAPE, spec=KeySpec(amplitude=16))
    b = KeySet.generate(("digit", "parity"), image_shape=SHAPE, spec=KeySpec(amplitude=16))
    for p in a.patterns():
        assert p.shape == SHAPE and set(np.unique(p).tolist()) == {-16, 16}
        assert 0.4 < (p > 0).mean() < 0.6                      # a random sign per pixel
    assert not np.array_equal(a.pattern("digit"), a.pattern("parity"))
    assert not np.array_equal(a.pattern("digit"), b.pattern("digit"))   # drawn afresh, never seeded


def test_patch_keys_sit_in_their_own_square():
    ks = KeySet.generate(("left", "right"), image_shape=SHAPE, spec=KeySpec(form="patch", amplitude=60, patch_size=8))
    left, right = ks.pattern("left"), ks.pattern("right")
    assert np.count_nonzero(left) == 64 and np.count_nonzero(right) == 64
    assert np.count_nonzero(left[:8, :8]) == 64 and np.count_nonzero(right[:8, 8:16]) == 64
    with pytest.raises(ConfigError, match="do not fit"):
        KeySet.generate(tuple("abcdefghij"), image_shape=SHAPE, spec=KeySpec(form="patch", patch_size=8))


def test_keys_too_small_to_resist_guessing_are_refused():
    """A 7x7 patch holds 49 secret bits: few enough to try them all against the model (or, offline,
    against the salted digest its manifest records)."""
    with pytest.raises(ConfigError, match="holds 49 secret bits, fewer than 64"):
        KeySet.generate(("digit",), image_shape=SHAPE, spec=KeySpec(form="patch", patch_size=7))
    with pytest.raises(ConfigError, match="holds 16 secret bits"):
        KeySet.generate(("digit",), image_shape=(4, 4, 1))
    colour = KeySet.generate(("digit",), image_shape=(16, 16, 3), spec=KeySpec(form="patch", patch_size=5))
    assert np.count_nonzero(colour.pattern("digit")) == 75               # 5x5x3 bits: enough


def test_keys_apply_to_uint8_images_clip_and_combine():
    rng = np.random.default_rng(0)            # tiny hand-made patterns: generate() refuses keys this small
    ks = KeySet({t: rng.integers(-100, 101, size=(2, 2, 1)) for t in "ab"}, spec=KeySpec(amplitude=100),
                image_shape=(2, 2, 1))
    images = np.array([[[[0], [128]], [[250], [5]]]], dtype=np.uint8)
    both = ks.apply(images)
    expected = np.clip(images.astype(int) + ks.pattern("a") + ks.pattern("b"), 0, 255)
    assert both.dtype == np.uint8 and np.array_equal(both, expected)
    assert np.array_equal(ks.apply(images, ()), images)
    with pytest.raises(ConfigError, match="uint8"):
        apply_patterns(images.astype(np.float32), ks.patterns())


def test_key_file_is_private_and_round_trips(tmp_path):
    ks = KeySet.generate(("digit",), image_shape=SHAPE)
    path = ks.save(str(tmp_path / "model.keys"))
    assert os.stat(path).st_mode & 0o777 == 0o600
    back = KeySet.load(path)
    assert np.array_equal(back.pattern("digit"), ks.pattern("digit")) and back.spec == ks.spec
    with pytest.raises(KeyFileError, match="a key file exists"):
        ks.save(path)
    os.chmod(path, 0o644)
    with pytest.raises(KeyFileError, match="may be read by others.*chmod 600"):
        KeySet.load(path)
    os.chmod(path, 0o600)
    (tmp_path / "junk.keys").write_text("{}")
    os.chmod(tmp_path / "junk.keys", 0o600)
    with pytest.raises(KeyFileError, match="not a raypriv key file"):
        KeySet.load(str(tmp_path / "junk.keys"))


def test_a_key_file_of_another_model_is_refused(tmp_path):
    ours = KeySet.generate(("digit",), image_shape=SHAPE)
    theirs = KeySet.generate(("digit",), image_shape=SHAPE)
    salt = new_salt()
    digests = key_digests(ours, salt=salt)
    path = ours.save(str(tmp_path / "ours.keys"))
    assert KeySet.load(path, digests=digests, salt=salt).tasks == ("digit",)
    with pytest.raises(KeyFileError, match="not this model's"):
        check_digests(theirs, digests=digests, salt=salt)
    assert key_digests(ours, salt=new_salt()) != digests                 # salted per model


def test_nothing_but_the_key_file_shows_a_pattern():
    ks = KeySet.generate(("digit",), image_shape=(8, 8, 1), spec=KeySpec(amplitude=7))
    assert repr(ks) == str(ks) == "KeySet(tasks=('digit',), form='full', amplitude=7, image_shape=(8, 8, 1))"


def test_the_pipeline_uses_a_key_file_only_of_the_form_its_settings_ask_for(tmp_path):
    """A sweep over key settings with one shared key file would train every trial with the first
    trial's keys: an existing key file of another form is refused before any work; without a
    ``keys`` setting each pipeline gets its own file beside its output."""
    from raypriv.jobs import Reporter, get_job

    path = KeySet.generate(("digit",), image_shape=SHAPE, spec=KeySpec(amplitude=16)).save(str(tmp_path / "k.keys"))
    job = get_job("mtk.pipeline").from_dict({"source": "mnist5k-tasks", "output": str(tmp_path / "run"),
                                             "keys": path, "key": {"amplitude": 8}})
    with pytest.raises(KeyFileError, match="amplitude 16, settings 8"):
        job.run(Reporter(quiet=True))
    other_tasks = get_job("mtk.pipeline").from_dict({"source": "mnist5k-tasks", "output": str(tmp_path / "run"),
                                                     "keys": path, "secured": ["parity"]})
    with pytest.raises(KeyFileError, match=r"secured tasks \['digit'\] \(settings: \['parity'\]\)"):
        other_tasks.run(Reporter(quiet=True))
    assert not (tmp_path / "run").exists()
    own = get_job("mtk.pipeline").from_dict({"source": "mnist5k-tasks", "output": str(tmp_path / "trials" / "000")})
    assert own.key_file() == str(tmp_path / "trials" / "000.keys")
