"""The sweep smoke config of jobs/: DP²-VAE trials, each a TorchTrainer nested in a Tune trial
(Ray 2.60's Train/Tune interop), trained on the training split less the validation rows and
charged to the dataset's budget composed. Sampling and evaluation are switched off here to keep
the suite short (their Ray Train runs nest the same way; the trials' validation scoring is
tests/sweeps/test_sweep_readme.py's and tests/data/test_data_holdout.py's)."""
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
                          [f"output={tmp_path / 'sweep'}", f"budget={tmp_path / 'budget'}",
                           "base.sample_images_per_class=0", "metric=model.epsilon_spent:max",
                           "frontier=[model.epsilon_spent:min, wall_time_s:min]"])
    result = SweepJob.from_dict(cfg).run(Reporter(quiet=True))
    out = tmp_path / "sweep"
    rows = pd.read_csv(out / "results.csv").set_index("train.epsilon")
    assert list(rows.index) == [2, 8] and (rows["model.epsilon_spent"] <= rows.index * 1.001).all()
    assert (rows["model.epsilon_spent"] >= rows.index * 0.99).all()
    manifest = json.loads((out / "manifest.json").read_text())
    cost = manifest["privacy"]
    assert cost["kind"] == "composed" and 8 < cost["sweep_epsilon"] < 10       # RDP of ε 2 and ε 8 (PRV each)
    assert cost["dataset"]["epsilon_spent"] == pytest.approx(cost["sweep_epsilon"])
    assert result.privacy["epsilon"] == pytest.approx(cost["sweep_epsilon"])
    for trial in ("000", "001"):                 # trained on the training split less the validation rows
        model = json.loads((out / "trials" / trial / "model" / "release" / "manifest.json").read_text())
        assert model["source"] == "digits#validation=0.2"
        assert model["privacy"]["epsilon_spent"] <= model["privacy"]["epsilon_target"]
    assert (out / "frontier.png").exists()
