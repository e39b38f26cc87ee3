"""protect() end to end on a real local Ray: bounds, signs, granularity, manifest, stop rule."""
import os

import numpy as np
import pytest

from raypriv.errors import ArtifactError
from raypriv.runtime import ResourceSpec
from raypriv.unlearnable import UnlearnableConfig, generate_noise, protect

from tests.unlearnable.ue_helpers import FAST, rows_by_id


def _diffs(original, output):
    from raypriv.data import load_corpus

    released = rows_by_id(load_corpus(f"parquet:{output}").ds)
    clean = rows_by_id(original.ds)
    assert set(released) == set(clean)
    ids = sorted(clean)
    d = np.stack([released[i]["image"].astype(int) - clean[i]["image"].astype(int) for i in ids])
    return ids, d, clean


@pytest.fixture(scope="module", params=["samplewise", "classwise"])
def protected(request, digits200, tmp_path_factory):
    """One two-round protect run per mode, shared by the release and the PGD tests. Its
    surrogate trains for 20 steps a round (not FAST's 3): a loss PGD can visibly lower."""
    mode = request.param
    cfg = UnlearnableConfig(mode=mode, epsilon=16 / 255, step_size=2 / 255, max_rounds=2, stop_accuracy=1.0,
                            **{**FAST, "train_steps": 20, "pgd_steps": 5})
    out = str(tmp_path_factory.mktemp(mode) / "out")
    res = protect(digits200, output=out, config=cfg, resources=ResourceSpec(workers=2), progress=lambda m: None)
    return mode, cfg, out, res


def test_protect_writes_bounded_two_sided_noise_with_manifest(digits200, protected):
    mode, cfg, out, res = protected
    ids, d, clean = _diffs(digits200, out)
    assert np.abs(d).max() <= cfg.budget_255 == 16
    assert (d > 0).sum() > 100 and (d < 0).sum() > 100        # negative noise survives release
    m = res.manifest
    assert m["method"] == f"unlearnable-{mode}" and m["params"]["epsilon"] == cfg.epsilon
    assert m["input_fingerprint"] == digits200.keyed_fingerprint() != digits200.fingerprint()
    assert m["rows"] == 200 and m["rounds"] == 2
    assert "raypriv_version" in m and os.path.exists(os.path.join(out, "manifest.json"))
    assert not os.path.exists(out + ".checkpoints")             # removed after a finished run
    # granularity: same-class images share noise only in class-wise mode
    labels = np.array([clean[i]["label"] for i in ids])
    same = np.flatnonzero(labels == labels[0])[:2]
    img = np.stack([clean[i]["image"] for i in ids]).astype(int)
    inside = (img[same[0]] > 16) & (img[same[0]] < 239) & (img[same[1]] > 16) & (img[same[1]] < 239)
    equal = np.array_equal(d[same[0]][inside], d[same[1]][inside])
    assert equal == (mode == "classwise")
    with pytest.raises(ArtifactError, match="already holds"):
        protect(digits200, output=out, config=cfg, resources=ResourceSpec(workers=2), progress=lambda m: None)


def test_the_manifest_holds_the_visual_cost_of_the_released_images(digits200, protected):
    """PSNR and SSIM of every released image against its original, recomputed from the files."""
    from raypriv.data import load_corpus
    from raypriv.similarity import psnr_per_image, ssim_per_image
    from raypriv.unlearnable.report import run_metrics

    _, _, out, res = protected
    released, clean = rows_by_id(load_corpus(f"parquet:{out}").ds), rows_by_id(digits200.ds)
    ids = sorted(clean)
    a, b = (np.stack([rows[i]["image"] for i in ids]) for rows in (clean, released))
    cost = res.manifest["visual_cost"]
    assert cost["ssim"]["n"] == cost["psnr_db"]["n"] == 200
    for key, values in (("ssim", ssim_per_image(a, b)), ("psnr_db", psnr_per_image(a, b))):
        assert cost[key]["mean"] == pytest.approx(values.mean(), rel=1e-9)
        assert cost[key]["min"] == pytest.approx(values.min(), rel=1e-9)
    assert 0 < cost["ssim"]["mean"] < 1 and 20 < cost["psnr_db"]["mean"] < 100     # 16/255 noise: visible
    assert run_metrics(res.manifest)["visual_cost"]["ssim"] == {"mean": cost["ssim"]["mean"],
                                                               "min": cost["ssim"]["min"]}


def test_classwise_reduction_is_exact_across_workers_and_batches(digits200):
    cfg = UnlearnableConfig(mode="classwise", max_rounds=1, stop_accuracy=1.0, **FAST)
    one = generate_noise(digits200, config=cfg, resources=ResourceSpec(workers=1), checkpoint_dir=None,
                         progress=lambda m: None)
    cfg2 = UnlearnableConfig(**{**cfg.to_dict(), "pgd_batch_size": 17})
    two = generate_noise(digits200, config=cfg2, resources=ResourceSpec(workers=2), checkpoint_dir=None,
                         progress=lambda m: None)
    np.testing.assert_allclose(one.class_noise, two.class_noise, rtol=0, atol=1e-6)
    assert np.abs(one.class_noise).max() > 0


def test_stops_only_once_the_threshold_is_reached_and_not_before_min_rounds(digits200):
    """Round 1's accuracy a1 (deterministic for a seed): a threshold just above it must not stop
    after round 1; one at a1 must; a reachable threshold still waits for ``min_rounds``."""
    quiet = dict(resources=ResourceSpec(workers=1), checkpoint_dir=None, progress=lambda m: None)
    base = dict(mode="samplewise", max_rounds=2, **FAST)
    first = generate_noise(digits200, config=UnlearnableConfig(**base, stop_accuracy=1.0, min_rounds=1), **quiet)
    a1 = first.history[0]["perturbed_acc"]
    assert 0 < a1 < 1
    at = generate_noise(digits200, config=UnlearnableConfig(**base, stop_accuracy=a1, min_rounds=1), **quiet)
    assert len(at.history) == 1 and "perturbed accuracy" in at.stop_reason
    above = generate_noise(digits200, config=UnlearnableConfig(**base, stop_accuracy=min(1.0, a1 + 1e-6),
                                                               min_rounds=1), **quiet)
    assert len(above.history) == 2 and above.history[0]["perturbed_acc"] == a1
    floor = generate_noise(digits200, config=UnlearnableConfig(**base, stop_accuracy=a1 / 2, min_rounds=2), **quiet)
    assert len(floor.history) == 2 and "perturbed accuracy" in floor.stop_reason


def test_every_round_of_pgd_lowers_the_surrogates_loss_and_moves_the_noise_off_its_start(digits200, protected):
    """PGD must *minimize* the frozen surrogate's loss on the perturbed data, each round, and
    the noise it releases must have left its random start (a pass that hands back the old
    noise, or ascends the loss, fails here)."""
    from raypriv.unlearnable.generator import initial_class_noise, initial_samplewise_noise

    mode, cfg, _, res = protected
    history = res.noise.history
    for rec in history:
        assert rec["perturbed_loss_after"] < 0.9 * rec["perturbed_loss_before"], rec
    assert history[1]["perturbed_loss_after"] < history[0]["perturbed_loss_after"]
    shape = digits200.info.image_shape
    if mode == "samplewise":
        rows = sorted(res.noise.work.take_all(), key=lambda r: r["id"])
        final = np.stack([r["noise"] for r in rows])
        start = initial_samplewise_noise([r["id"] for r in rows], shape=shape, epsilon=cfg.epsilon, seed=cfg.seed)
    else:
        final = res.noise.class_noise
        start = initial_class_noise(num_classes=digits200.info.num_classes, shape=shape, epsilon=cfg.epsilon,
                                    seed=cfg.seed)
    moved = np.abs(final - start)
    assert (moved > 1e-6).mean() > 0.5 and moved.mean() > cfg.step_size / 2, moved.mean()


def test_protect_writes_to_object_storage_and_the_corpus_reads_back(digits200):
    """``output`` as an ``s3://`` URI (the session's S3-compatible server): shards first, the
    manifest last, read back through ``parquet:s3://…``; a second run is refused."""
    from raypriv.data import load_corpus
    from raypriv.manifest import is_finished, read_manifest
    from tests.conftest import s3_prefix

    out = s3_prefix("protected")
    cfg = UnlearnableConfig(mode="classwise", max_rounds=1, stop_accuracy=1.0, **FAST)
    res = protect(digits200, output=out, config=cfg, resources=ResourceSpec(workers=2), progress=lambda m: None)
    assert res.output == out and is_finished(out) and read_manifest(out)["rows"] == 200
    back = load_corpus(f"parquet:{out}")
    assert back.info.num_rows == 200 and set(rows_by_id(back.ds)) == set(rows_by_id(digits200.ds))
    with pytest.raises(ArtifactError, match="already holds"):
        protect(digits200, output=out, config=cfg, resources=ResourceSpec(workers=2), progress=lambda m: None)
