"""The sweep smoke config of jobs/ as written: DP²-VAE trials, each a TorchTrainer nested in a
Tune trial (Ray 2.60's Train/Tune interop), scored on the validation split, charged to the
dataset's budget composed, with the frontier of ε spent vs downstream accuracy."""
import json
import os

import pandas as pd
import pytest

from raypriv.jobs.base import Reporter
from raypriv.jobs.entry import load_job_config
from raypriv.sweeps import SweepJob

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.mark.slow
def test_the_dpvae_sweep_smoke_config_runs_nested_ray_train_trials(ray_local, tmp_path):
    cfg = load_job_config(os.path.join(ROOT, "jobs", "configs", "sweep_smoke.yaml"),
                          [f"output={tmp_path / 'sweep'}", f"budget={tmp_path / 'budget'}"])
    result = SweepJob.from_dict(cfg).run(Reporter(quiet=True))
    out = tmp_path / "sweep"
    rows = pd.read_csv(out / "results.csv").set_index("train.epsilon")
    assert list(rows.index) == [2, 8] and (rows["model.epsilon_spent"] <= rows.index * 1.001).all()
    assert rows["eval.downstream_test_acc"].between(0, 1).all()
    manifest = json.loads((out / "manifest.json").read_text())
    cost = manifest["privacy"]
    assert cost["kind"] == "composed" and 8 < cost["sweep_epsilon"] < 10       # RDP of ε 2 and ε 8 (PRV each)
    assert cost["dataset"]["epsilon_spent"] == pytest.approx(cost["sweep_epsilon"])
    assert result.privacy["epsilon"] == pytest.approx(cost["sweep_epsilon"])
    for trial in ("000", "001"):                 # trained on the training part, scored on the validation rows
        model = json.loads((out / "trials" / trial / "model" / "release" / "manifest.json").read_text())
        report = json.loads((out / "trials" / trial / "eval" / "report.json").read_text())
        assert model["source"] == report["real_test"] == "digits#validation=0.2"
        assert report["real_test_split"] == "validation"
    assert (out / "frontier.png").exists()
