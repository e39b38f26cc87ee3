"""Generation: labeled uint8 output with provenance, deterministic per seed, resumable, and it
really moves the teacher's BN statistics towards the class targets."""
import os

import numpy as np
import pytest
import torch

from raypriv.data import load_corpus, read_manifest
from raypriv.errors import ArtifactError, ConfigError
from raypriv.runtime import ResourceSpec
from raypriv.synth import SynthConfig, generate
from raypriv.synth.generation import generation_tasks, stage_task, synth_id

FAST = dict(images_per_class=4, batch_size=2, iterations=30)
RES = ResourceSpec(workers=2)


def _images(path):
    return {r["id"]: r for r in load_corpus(f"parquet:{path}").ds.take_all()}


def test_generate_writes_a_labeled_corpus_with_manifest(digits_teacher, digits_stats, tmp_path):
    lines = []
    out = generate(digits_teacher, digits_stats, output=str(tmp_path / "syn"), config=SynthConfig(**FAST),
                   resources=RES, progress=lines.append)
    rows = _images(out)
    assert len(rows) == 40 and sorted(rows) == sorted(synth_id(c, i) for c in range(10) for i in range(4))
    assert all(r["image"].dtype == np.uint8 and r["image"].shape == (8, 8, 1) for r in rows.values())
    assert all(r["label"] == int(r["id"].split("/")[1][1:]) for r in rows.values())
    m = read_manifest(out)
    assert m["method"] == "synth-bn-stats-generate" and m["params"]["iterations"] == 30 and m["seed"] == 0
    assert m["input_fingerprint"] == digits_stats.manifest["input_fingerprint"] and m["rows"] == 40
    assert sum("batch c" in s for s in lines) == 20 and not os.path.exists(str(tmp_path / "syn") + ".tasks")


def test_same_seed_same_images_other_seed_different(digits_teacher, digits_stats, tmp_path):
    """1 and 2 Ray workers give byte-identical corpora; another seed gives other images."""
    from raypriv.synth.inversion import BNStatLoss, synthesize_batch

    cfg = SynthConfig(**{**FAST, "images_per_class": 2})
    a = generate(digits_teacher, digits_stats, output=str(tmp_path / "a"), config=cfg, resources=RES,
                 progress=lambda m: None)
    b = generate(digits_teacher, digits_stats, output=str(tmp_path / "b"), config=cfg,
                 resources=ResourceSpec(workers=1), progress=lambda m: None)
    assert read_manifest(a)["fingerprint"] == read_manifest(b)["fingerprint"]
    net = digits_teacher.build().eval()
    loss = BNStatLoss(net, first_bn_weight=10.0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)   # like a 1-CPU Ray actor: CPU float sums depend on the thread count
    try:
        one, other = (synthesize_batch(net, loss, label=0, n=2, image_shape=(8, 8, 1), config=cfg, seed=s,
                                       targets=digits_stats.targets(0), device="cpu")[0]
                      for s in (generation_tasks(10, cfg)[0]["seed"], 1))
    finally:
        torch.set_num_threads(threads)
    assert (one[0] == _images(a)[synth_id(0, 0)]["image"]).all() and (one != other).any()


def test_rerun_skips_finished_tasks_and_refuses_other_settings(digits_teacher, digits_stats, tmp_path):
    out = str(tmp_path / "syn")
    cfg = SynthConfig(**FAST)
    with pytest.raises(ValueError, match="statistics"):   # a first run that "crashes": fails before any task (bad statistics kind)
        generate(digits_teacher, digits_stats, output=out, resources=RES, progress=lambda m: None,
                 config=SynthConfig(**{**FAST, "statistics": "nope"}))
    # stage a run that died after one task; its (sentinel) images must be kept, not redone
    from raypriv.synth.generation import _open_staging, _plan

    staging = out + ".tasks"
    _open_staging(staging, _plan(digits_teacher, digits_stats, cfg))
    first = generation_tasks(10, cfg)[0]
    sentinel = np.full((2, 8, 8, 1), 77, np.uint8)
    stage_task(staging, first["task"], ids=[synth_id(0, 0), synth_id(0, 1)], label=0, images=sentinel)
    lines = []
    generate(digits_teacher, digits_stats, output=out, config=cfg, resources=RES, progress=lines.append)
    assert "19 of 20 batch tasks to run" in lines[0]
    rows = _images(out)
    assert (rows[synth_id(0, 0)]["image"] == 77).all() and not (rows[synth_id(0, 2)]["image"] == 77).all()
    assert not os.path.exists(staging)   # removed once the corpus is written
    # batches staged with other settings are never silently mixed in
    other = str(tmp_path / "other")
    _open_staging(other + ".tasks", _plan(digits_teacher, digits_stats, cfg))
    with pytest.raises(ArtifactError, match="other settings"):
        generate(digits_teacher, digits_stats, output=other, config=SynthConfig(**{**FAST, "lr": 0.2}),
                 resources=RES, progress=lambda m: None)
    assert not os.path.exists(other)


def test_classwise_generation_matches_class_statistics_better_than_noise(digits_teacher, digits_stats):
    """The optimized batch's BN statistics are far closer to its class's targets than the
    starting noise's, and closer to its own class's targets than to another class's."""
    from raypriv.synth.inversion import BNStatLoss, synthesize_batch

    net = digits_teacher.build().eval()
    for p in net.parameters():
        p.requires_grad_(False)
    loss = BNStatLoss(net, first_bn_weight=1.0)
    cfg = SynthConfig(iterations=150, ce=0.0, jitter=0)

    def bn_distance(images, label):
        loss.set_targets(digits_stats.targets(label), "cpu")
        with torch.no_grad():
            net(torch.as_tensor(images).permute(0, 3, 1, 2).float() / 255)
        return float(loss.pop())

    noise = (np.clip(0.5 + 0.2 * np.random.default_rng(0).standard_normal((16, 8, 8, 1)), 0, 1) * 255).astype(np.uint8)
    images, info = synthesize_batch(net, loss, label=3, n=16, image_shape=(8, 8, 1), targets=digits_stats.targets(3),
                                    config=cfg, seed=0, device="cpu")
    assert bn_distance(images, 3) < 0.5 * bn_distance(noise, 3)
    assert bn_distance(images, 3) < bn_distance(images, 5)
    assert info["acc"] > 0.5   # the teacher sees class 3 without being told (ce weight 0)


def test_bad_settings_and_mismatched_statistics(digits_teacher, digits_stats, tmp_path):
    with pytest.raises(ConfigError, match="images_per_class"):
        SynthConfig(images_per_class=0)
    with pytest.raises(ConfigError, match="invalid iters: unknown setting"):
        SynthConfig.from_dict({"iters": 3})
    from tests.synth.synth_helpers import quick_teacher

    other = quick_teacher(load_corpus("digits").head(50), epochs=1)   # same architecture, other weights
    with pytest.raises(ArtifactError, match="not recorded from this teacher"):
        generate(other, digits_stats, output=str(tmp_path / "x"), config=SynthConfig(**FAST), progress=lambda m: None)
    assert not os.path.exists(tmp_path / "x")
