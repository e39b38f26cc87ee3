"""The unlearnable pipeline job (protect, then check) end to end on a small Parquet corpus: both
stages written, the Result carries what ``raypriv sweep`` trades off by default, and a re-run
reuses the finished stages."""
import pytest

from raypriv.jobs import Reporter, get_job

from tests.unlearnable.ue_helpers import small_corpus


@pytest.fixture(scope="module")
def source(ray_local, tmp_path_factory):
    """``parquet:ROOT`` with 200 digits in ROOT/train and 100 in ROOT/test."""
    from raypriv.data import write_corpus

    root = tmp_path_factory.mktemp("digits-parquet")
    for split, n in (("train", 200), ("test", 100)):
        write_corpus(small_corpus("digits", n, split=split), str(root / split), manifest={"method": "test-copy"})
    return f"parquet:{root}"


def _metric(result, axis: str) -> float:
    return result.metrics[axis.rsplit(":", 1)[0]]


def test_the_pipeline_protects_checks_and_reports_the_sweep_axes(source, tmp_path):
    cls = get_job("unlearnable.pipeline")
    settings = {"source": source, "output": str(tmp_path / "pipe"), "resources": {"workers": 2},
                "unlearnable": {"mode": "classwise", "epsilon_255": 16, "surrogate": "tiny_cnn", "pgd_steps": 3,
                                "train_steps": 3, "max_rounds": 1},
                "evaluate": {"defenses": ["none"], "victim": {"epochs": 1}}}
    result = cls.from_dict(settings).run(Reporter(quiet=True))
    assert (tmp_path / "pipe" / "protected" / "manifest.json").exists()
    assert (tmp_path / "pipe" / "eval" / "manifest.json").exists()
    for axis in (cls.SWEEP_METRIC, *cls.SWEEP_FRONTIER):
        assert axis.rsplit(":", 1)[0] in result.metrics, (axis, sorted(result.metrics))
    assert 0 < _metric(result, "protected.visual_cost.ssim.mean") < 1
    assert 0 <= _metric(result, cls.SWEEP_METRIC) <= 1
    assert result.artifacts["eval.grid"].endswith("grid.png")

    again = Reporter(quiet=True)
    rerun = cls.from_dict(settings).run(again)
    assert sum(line.startswith("reusing") for line in again.lines) == 2
    assert rerun.metrics == result.metrics           # a reused stage reports what the fresh one did


def test_the_checks_settings_are_validated_when_the_job_is_built():
    from raypriv.errors import ConfigError

    with pytest.raises(ConfigError, match="evaluate.victim.epocs"):
        get_job("unlearnable.pipeline").from_dict({"source": "digits", "output": "/tmp/x",
                                                   "evaluate": {"victim": {"epocs": 1}}})
