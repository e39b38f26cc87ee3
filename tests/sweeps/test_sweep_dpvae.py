"""Trials whose job trains with Ray Train: a TorchTrainer nested in each Tune trial (Ray 2.60's
Train/Tune interop), and the DP²-VAE pipeline's plan, which is what its sweep charges."""
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

