"""A BN-synthesis sweep end to end: trials of the synth pipeline, each training its teacher with
Ray Train inside its Tune trial, scored on a validation split."""
import json

import pandas as pd

from raypriv.jobs.base import Reporter
from raypriv.sweeps import SweepJob


def test_a_bn_synthesis_sweep_reports_utility_against_membership_inference(ray_local, tmp_path):
    """A tiny BN-synthesis sweep on the digits (one trial: each costs a teacher, a synthesis and
    two victims): the trial trains its teacher with Ray Train inside the Tune trial, synthesizes,
    and is scored on the validation split: synthetic-trained accuracy vs membership-inference
    AUC, and nearest-real SSIM."""
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
