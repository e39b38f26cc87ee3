"""Running a sweep: the trials' jobs built and checked, the privacy cost charged, Ray Tune run
(or resumed), and the results, frontier and manifest written.

Layout of ``output``::

    sweep.json            written first: the charge id, settings and drawn trials (what a resume reuses)
    tune/                 Ray Tune's experiment (what Tuner.restore resumes)
    attempts/<id>/        which trials started and finished (what a resume charges again)
    trials/NNN/           each trial's job output
    results.csv|.parquet  one row per finished trial: its settings, metrics, ε
    frontier.csv|.png     the Pareto frontier of the two axes
    manifest.json         written last: the sweep's settings, best trial, privacy
    release/              private selection only: the winner, the one thing its ε covers

With private selection everything but ``release/`` reveals the number of trials and their
scores: it stays with the data owner.
"""
from __future__ import annotations

import json
import os

from raypriv import storage
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


def _state(sweep, out: str) -> tuple[dict, bool]:
    """The sweep's state (``sweep.json``: id, settings, drawn trials) and whether it was there
    already (a resume). A new sweep's state is written before it is charged or run."""
    from raypriv.files import write_json_atomic
    from raypriv.sweeps.trials import STATE_NAME, new_sweep_id, plan_trials, sweep_settings

    path = os.path.join(out, STATE_NAME)
    settings = sweep_settings(sweep)
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            state = json.load(f)
        differ = sorted(k for k in set(settings) | set(state["settings"])
                        if settings.get(k) != state["settings"].get(k))
        if differ:
            raise ConfigError("output", f"{out} holds a sweep with other {', '.join(differ)}: resume it with its own "
                                        "settings, or choose a new output")
        return state, True
    if storage.exists(sweep.tune_path()):
        raise ConfigError("output", f"{sweep.tune_path()} holds a Tune experiment but {out} has no {STATE_NAME}: "
                                    "choose a new output (and storage)")
    params, cands = plan_trials(sweep)
    state = {"id": new_sweep_id(), "settings": settings, "params": params, "candidates": cands}
    os.makedirs(out, exist_ok=True)
    write_json_atomic(path, state)
    return state, False


def _charge_reruns(sweep, jobs, cost, sweep_id: str, fingerprint: str, reporter):
    """On a resume: charge the trials that started but did not finish, which run again
    (:mod:`raypriv.sweeps.attempts`), unless their job resumes its own run within its plan."""
    from raypriv.sweeps.attempts import attempts_root, started_unfinished
    from raypriv.sweeps.cost import charge_reruns

    if sweep.job_class().RERUN_WITHIN_PLAN:
        return cost
    again = started_unfinished(attempts_root(sweep.tune_storage(), sweep_id), range(len(jobs)))
    if not again:
        return cost
    cost = charge_reruns(cost, [jobs[i].planned_privacy() for i in again], sweep_id=sweep_id,
                         budget_dir=sweep.budget, epsilon_budget=sweep.epsilon_budget, fingerprint=fingerprint)
    what = "a trial" if sweep.selection == "private" else f"trial(s) {', '.join(map(str, again))}"
    reporter(f"{what} started before and will run again with fresh noise: charged again")
    return cost


def run_sweep(sweep, reporter) -> Outcome:
    from raypriv.sweeps.cost import charge_sweep, plan_cost
    from raypriv.sweeps.report import write_results
    from raypriv.sweeps.trials import STATE_NAME, build_jobs
    from raypriv.sweeps.tuning import run_tuner

    out = os.path.abspath(sweep.output)
    existed = os.path.isdir(out)
    state, resumed = _state(sweep, out)
    try:
        jobs, cands = build_jobs(sweep, state["params"], state["candidates"])
        cost, plans, k = plan_cost(jobs, candidates=cands, selection=sweep.selection, mean_trials=sweep.mean_trials,
                                   eta=sweep.eta, data=sweep.data)
        if cost.kind in ("composed", "private-selection"):
            fingerprint = _fingerprint(plans)
            cost = charge_sweep(cost, plans, k, sweep_id=state["id"], budget_dir=sweep.budget,
                                epsilon_budget=sweep.epsilon_budget, fingerprint=fingerprint)
            if resumed:
                cost = _charge_reruns(sweep, jobs, cost, state["id"], fingerprint, reporter)
    except Exception:
        if not resumed:                       # nothing ran and nothing was charged: leave nothing behind
            os.remove(os.path.join(out, STATE_NAME))
            if not existed:
                os.rmdir(out)
        raise
    if cost.dataset is not None:       # with private selection the dataset's total could tell re-runs: not logged
        spent = "" if sweep.selection == "private" else \
            f"; the dataset has spent ε = {cost.dataset['epsilon_spent']:.3f}"
        reporter(f"charged the sweep to the dataset's budget: ε = {cost.sweep_epsilon:.3f} at δ = {cost.delta:g} "
                 f"({cost.kind}){spent}")
    what = "a secret number of" if sweep.selection == "private" else str(len(jobs))
    reporter(f"sweep {sweep.job}: {what} trials, {sweep.concurrent} at a time, each with "
             f"{sweep.trial_workers} worker(s); {'resuming' if resumed else 'starting'} in {out}")
    rows, errors = run_tuner(sweep, state["params"], reporter, sweep_id=state["id"])
    return write_results(sweep, rows, errors, cost, reporter, sweep_id=state["id"])
