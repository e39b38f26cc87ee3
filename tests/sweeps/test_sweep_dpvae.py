"""Trials whose job trains with Ray Train: a TorchTrainer nested in each Tune trial (Ray 2.60's
Train/Tune interop), the DP²-VAE pipeline's plan, which is what its sweep charges, and a BN-synthesis
sweep end to end."""
import os

import pandas as pd

from raypriv.jobs.base import Reporter
from raypriv.jobs.entry import load_job_config
from raypriv.sweeps import SweepJob
from tests.sweeps.sweep_jobs import MODULE

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_trials_run_ray_train_inside_tune_trials(ray_local, tmp_path):
    sweep = SweepJob.from_dict({"job": "sweeptest-train", "imports": [MODULE], "output": str(tmp_path / "sweep"),
                                "base": {"output": "x"}, "space": {"scale": {"grid": [3.0]}}, "validation": 0})
    sweep.run(Reporter(quiet=True))
    rows = pd.read_csv(tmp_path / "sweep" / "results.csv")
    assert rows.loc[0, "value"] == 3.0                                         # reported by the Ray Train worker
    assert any(p.startswith("checkpoint_") for p in os.listdir(tmp_path / "sweep" / "trials" / "000" / "tiny"))


def test_the_dpvae_sweep_charges_what_each_trial_plans_to_spend():
    """The smoke sweep's trials plan ε 2 and 8 on the training split less the validation rows: two
    private stages each (σ solved for the target, q from the declared size)."""
    from raypriv.privacy.accounting import epsilon
    from raypriv.sweeps.trials import build_jobs, plan_trials

    sweep = SweepJob.from_dict(load_job_config(os.path.join(ROOT, "jobs", "configs", "sweep_smoke.yaml")))
    jobs, _ = build_jobs(sweep, *plan_trials(sweep))
    for job, target in zip(jobs, (2.0, 8.0)):
        plan = job.planned_privacy()
        assert plan.source == "digits#validation=0.2" and plan.delta == 1e-4 and len(plan.mechanisms) == 2
        assert {m.sample_rate for m in plan.mechanisms} == {256 / 1200}          # q from the declared size
        assert target * 0.99 <= epsilon(list(plan.mechanisms), delta=1e-4) <= target


def test_a_bn_synthesis_sweep_reports_utility_against_membership_inference(ray_local, tmp_path):
    """A tiny BN-synthesis sweep on the digits (one trial: each costs a teacher, a synthesis and
    two victims): the trial trains its teacher with Ray Train inside the Tune trial, synthesizes,
    and is scored on the validation split: synthetic-trained accuracy vs membership-inference
    AUC, and nearest-real SSIM."""
    import json

    sweep = SweepJob.from_dict({
        "job": "synth.pipeline", "output": str(tmp_path / "sweep"), "trial_workers": 1,
        "base": {"source": "digits", "output": "x", "teacher": {"epochs": 1},
                 "synth": {"images_per_class": 4, "batch_size": 20, "iterations": 4},
                 "evaluate": {"images_per_class": [4], "victim": {"epochs": 1}, "nearest_max": 40}},
        "space": {"synth.bn": {"grid": [4.0]}}})
    sweep.run(Reporter(quiet=True))
    out = tmp_path / "sweep"
    rows = pd.read_csv(out / "results.csv")
    assert list(rows["synth.bn"]) == [4.0]
    assert rows["eval.summary.synthetic_test_acc"].between(0, 1).all()
    assert rows["eval.summary.mia_auc"].between(0.5, 1).all()                      # folded at 0.5
    assert rows["eval.summary.nearest_ssim_median"].between(-1, 1).all()
    assert list(pd.read_csv(out / "frontier.csv")["trial"]) == [0] and (out / "frontier.png").exists()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["privacy"]["kind"] == "no-dp-claim" and manifest["trials_finished"] == 1
    report = json.loads((out / "trials" / "000" / "eval" / "report.json").read_text())
    assert report["real_test"] == report["real_train"] == "digits#validation=0.2"   # scored on the holdout
    assert json.loads((out / "trials" / "000" / "synth" / "manifest.json").read_text())["rows"] == 40
