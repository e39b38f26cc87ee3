"""Running a sweep: the trials' jobs built and checked, the privacy cost charged, Ray Tune run
(or resumed), and the results, frontier and manifest written.

Layout of ``output``::

    tune/                 Ray Tune's experiment (what Tuner.restore resumes)
    trials/NNN/           each trial's job output
    results.csv|.parquet  one row per finished trial: its settings, metrics, ε
    frontier.csv|.png     the Pareto frontier of the two axes
    manifest.json         written last: the sweep's settings, best trial, privacy
"""
from __future__ import annotations

import json
import os

from raypriv.errors import ConfigError
from raypriv.jobs.base import Outcome

__all__ = ["run_sweep"]


def _fingerprint(plans) -> str:
    from raypriv.data import load_corpus
    from raypriv.data.sources import split_validation

    sources = {split_validation(p.source)[0] for p in plans}
    if len(sources) != 1:
        raise ConfigError("space", f"trials train on different data ({sorted(sources)}): one sweep, one dataset")
    return load_corpus(sources.pop(), split="train").keyed_fingerprint()


def run_sweep(sweep, reporter) -> Outcome:
    from raypriv.sweeps.cost import charge_sweep, plan_cost
    from raypriv.sweeps.trials import build_trial, plan_trials, sweep_id, trial_settings
    from raypriv.sweeps.tuning import run_tuner

    out = os.path.abspath(sweep.output)
    resumed = os.path.exists(os.path.join(out, "sweep.json"))
    if resumed:
        with open(os.path.join(out, "sweep.json"), encoding="utf-8") as f:
            state = json.load(f)
        if state["id"] != sweep_id(sweep):
            raise ConfigError("output", f"{out} holds another sweep ({state['job']}); choose a new output")
        params = state["params"]
        jobs = [build_trial(sweep, trial_settings(sweep, p, i), f"trial {i}") for i, p in enumerate(params)]
        cands = [build_trial(sweep, trial_settings(sweep, c, "candidate"), "candidate") for c in state["candidates"]]
    else:
        params, jobs, cands = plan_trials(sweep)
    cost, plans, k = plan_cost(jobs, candidates=cands, selection=sweep.selection, mean_trials=sweep.mean_trials,
                               eta=sweep.eta, data=sweep.data)
    if cost.kind in ("composed", "private-selection"):
        cost = charge_sweep(cost, plans, k, sweep_id=sweep_id(sweep), budget_dir=sweep.budget,
                            epsilon_budget=sweep.epsilon_budget, fingerprint=_fingerprint(plans))
        reporter(f"charged the sweep to the dataset's budget: ε = {cost.sweep_epsilon:.3f} at δ = {cost.delta:g} "
                 f"({cost.kind}); the dataset has spent ε = {cost.dataset['epsilon_spent']:.3f}")
    if not resumed:
        _write_state(out, sweep, params, cands)
    what = "a secret number of" if sweep.selection == "private" else str(len(jobs))
    reporter(f"sweep {sweep.job}: {what} trials, {sweep.concurrent} at a time, each with "
             f"{sweep.trial_workers} worker(s); {'resuming' if resumed else 'starting'} in {out}")
    rows, errors = run_tuner(sweep, [j for j in jobs], params, reporter)
    from raypriv.sweeps.report import write_results

    return write_results(sweep, rows, errors, cost, reporter)


def _write_state(out: str, sweep, params: list[dict], cands: list) -> None:
    """The trials' settings, kept so a resumed sweep runs the same trials (private selection:
    the drawn trials stay with the data owner, in the sweep's private directory)."""
    from raypriv.files import write_json_atomic
    from raypriv.sweeps.trials import sweep_id

    os.makedirs(out, exist_ok=True)
    write_json_atomic(os.path.join(out, "sweep.json"), {
        "id": sweep_id(sweep), "job": sweep.job, "params": params,
        "candidates": [] if not cands else [dict(c) for c in _candidate_params(sweep)]})


def _candidate_params(sweep) -> list[dict]:
    from raypriv.sweeps import space as sp

    return sp.candidates(sp.parse_space(sweep.space))
