"""`jobs/synth_bn_stats.py`: the pipeline from a YAML config, stage by stage, resumable."""
import importlib.util
import os

import pytest
import torch

from raypriv.errors import ConfigError
from raypriv.jobs.entry import load_job_config
from raypriv.synth.job import SynthPipelineJob as SynthJob

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SMOKE = os.path.join(ROOT, "jobs", "configs", "synth_smoke.yaml")


def _entry_point():
    spec = importlib.util.spec_from_file_location("synth_bn_stats", os.path.join(ROOT, "jobs", "synth_bn_stats.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_smoke_config_parses_and_bad_keys_are_named():
    job = SynthJob.from_dict(load_job_config(SMOKE, ["synth.iterations=7", "resources.workers=1"]))
    assert job.synth.iterations == 7 and job.teacher.epochs == 1 and job.evaluate.images_per_class == (5, 10)
    assert job.resources.workers == 1
    for bad, field in (({"synth": {"iters": 3}}, "synth.iters"), ({"teacher": {"epoch": 3}}, "teacher.epoch"),
                       ({"evaluate": {"victim": {"lr": 0}}}, "lr"), ({"outputs": "x"}, "outputs")):
        with pytest.raises(ConfigError, match=f"invalid {field}"):
            SynthJob.from_dict({"source": "digits", "output": "/tmp/x", **bad})
    with pytest.raises(ConfigError, match="--set"):
        load_job_config(SMOKE, ["synth.iterations"])


def test_job_runs_every_stage_and_a_rerun_reuses_them(ray_local, tmp_path, capsys):
    from raypriv.models import build_model

    torch.manual_seed(0)
    ckpt = tmp_path / "teacher.pt"
    torch.save(build_model("small_cnn", in_channels=1, num_classes=10, image_size=8).state_dict(), ckpt)
    out = tmp_path / "job"
    argv = ["--config", SMOKE, "--set", f"output={out}", "--set", f"teacher_checkpoint={ckpt}",
            "--set", "synth={images_per_class: 2, batch_size: 2, iterations: 5}", "--set", "evaluate=null"]
    job = _entry_point()
    assert job.main(job.get_args_parser().parse_args(argv)) == 0
    first = capsys.readouterr().out
    assert sorted(os.listdir(out)) == ["stats", "synth", "teacher"] and "reusing" not in first
    assert (out / "synth" / "manifest.json").exists() and f"synth: {out / 'synth'}" in first
    before = (out / "synth" / "manifest.json").read_text()
    assert job.main(job.get_args_parser().parse_args(argv)) == 0
    again = capsys.readouterr().out
    assert "reusing teacher" in again and "reusing statistics" in again and "reusing synthetic corpus" in again
    assert (out / "synth" / "manifest.json").read_text() == before        # not regenerated


def test_the_evaluation_stage_names_the_headline_figures_a_sweep_trades_off():
    """The synthetic-trained victim of the largest set, its membership-inference AUC and the
    nearest-real SSIM under fixed names: the pipeline's default sweep axes."""
    from raypriv.jobs.base import flat_metrics
    from raypriv.synth.job import SynthEvalJob

    report = {"utility": [{"train_set": "real", "images_per_class": None, "test_acc": 0.97},
                          {"train_set": "synthetic", "images_per_class": 10, "test_acc": 0.6},
                          {"train_set": "synthetic", "images_per_class": 50, "test_acc": 0.8}],
              "nearest_real": {"ssim": {"median": 0.3}},
              "membership_inference": {"synthetic_trained": {"auc": 0.45}, "real_trained": {"auc": 0.62}}}
    job = SynthEvalJob(synthetic="/tmp/s", real="digits", output="/tmp/e")
    metrics = flat_metrics(job.metrics_of_report(report))
    assert metrics["summary.synthetic_test_acc"] == 0.8
    assert metrics["summary.mia_auc"] == pytest.approx(0.55) and metrics["mia_auc.synthetic_trained"] == 0.45
    assert metrics["summary.nearest_ssim_median"] == 0.3 and metrics["test_acc.synthetic_10"] == 0.6
    for axis in (SynthJob.SWEEP_METRIC, *SynthJob.SWEEP_FRONTIER):
        assert axis.split(":")[0].removeprefix("eval.") in metrics
