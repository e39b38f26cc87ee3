"""Training-time defenses: spec parsing, pixel effects, and application through Ray Data."""
import numpy as np
import pytest

from tests.evaluate.eval_synthetic import corpus, images, protect
from raypriv.errors import ConfigError
from raypriv.evaluate import Defense, available_defenses, parse_defense, register_defense
from raypriv.evaluate.defenses import grayscale, jpeg


def test_parse_specs():
    assert parse_defense("none").transform is None and parse_defense("none").augment
    assert parse_defense("noaug").transform is None and not parse_defense("noaug").augment
    assert parse_defense(" jpeg:50 ").spec == "jpeg:50"
    assert parse_defense("grayscale").on_test and not parse_defense("jpeg:75").on_test
    assert {"none", "grayscale", "jpeg:Q", "noaug"} <= set(available_defenses())


@pytest.mark.parametrize("spec", ["blur", "jpeg", "jpeg:abc", "jpeg:101", "grayscale:2", "", None])
def test_bad_specs_raise_config_error(spec):
    with pytest.raises(ConfigError) as e:
        parse_defense(spec, field="defenses")
    assert e.value.field == "defenses"


def test_grayscale_replicates_luminance():
    x, _ = images(6, seed=3)
    x = protect(x, np.arange(6) % 3)  # coloured images
    g = grayscale(x)
    assert g.shape == x.shape and g.dtype == np.uint8
    assert (g[..., 0] == g[..., 1]).all() and (g[..., 1] == g[..., 2]).all()
    y = x.astype(np.float64) @ [0.299, 0.587, 0.114]
    assert np.abs(g[..., 0] - y).max() <= 0.51
    one = x[..., :1]
    assert grayscale(one) is one


def test_jpeg_changes_pixels_but_stays_close():
    x, _ = images(6, seed=4)
    for q in (30, 90):
        j = jpeg(x, quality=q)
        assert j.shape == x.shape and j.dtype == np.uint8
        diff = np.abs(j.astype(int) - x.astype(int))
        assert diff.max() > 0 and diff.mean() < 40
    hi = np.abs(jpeg(x, quality=95).astype(int) - x).mean()
    lo = np.abs(jpeg(x, quality=10).astype(int) - x).mean()
    assert hi < lo
    gray = jpeg(x[..., :1], quality=75)
    assert gray.shape == x[..., :1].shape


def test_defenses_apply_through_ray_data(ray_local):
    x, y = images(20, seed=5)
    c = corpus(x, y, split="train", source="t")
    rows = {r["id"]: r for r in parse_defense("grayscale").apply(c.ds).take_all()}
    assert len(rows) == 20
    for r in rows.values():
        img = np.asarray(r["image"])
        assert img.shape == (8, 8, 3) and img.dtype == np.uint8
        assert (img[..., 0] == img[..., 2]).all()
    jp = {r["id"]: np.asarray(r["image"]) for r in parse_defense("jpeg:75").apply(c.ds).take_all()}
    orig = {r["id"]: np.asarray(r["image"]) for r in c.ds.take_all()}
    assert set(jp) == set(orig) and any((jp[k] != orig[k]).any() for k in orig)
    assert parse_defense("noaug").apply(c.ds) is c.ds
    assert parse_defense("jpeg:75").apply(c.ds, test=True) is c.ds  # train-only transform


@pytest.fixture
def restore_defense_registry():
    from raypriv.evaluate import defenses

    saved = dict(defenses._DEFENSES), dict(defenses._USAGE)
    yield
    for registry, old in zip((defenses._DEFENSES, defenses._USAGE), saved):
        registry.clear()
        registry.update(old)


def test_register_custom_defense(restore_defense_registry):
    @register_defense("invert_for_test", usage="invert_for_test")
    def _invert(arg):
        if arg is not None:
            raise ValueError("takes no argument")
        return Defense("invert_for_test", transform=lambda a: 255 - a)

    d = parse_defense("invert_for_test")
    assert (d.transform(np.zeros((1, 2, 2, 3), np.uint8)) == 255).all()
    with pytest.raises(ConfigError, match="takes no argument"):
        parse_defense("invert_for_test:1")
