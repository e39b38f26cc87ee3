"""A sweep's outputs: the results table (CSV and Parquet), the Pareto frontier (CSV and PNG), the
best trial and the manifest, written last (the "finished?" rule)."""
from __future__ import annotations

import math
import os
from typing import Any

from raypriv.jobs.base import Outcome

__all__ = ["best_row", "write_results"]

RELEASE_DIR = "release"


def best_row(rows: list[dict[str, Any]], objective: str) -> dict[str, Any] | None:
    """The row with the best objective (``"metric:max|min"``); None when no row has it."""
    from raypriv.sweeps.frontier import Axis

    axis = Axis.parse(objective, what="metric")
    scored = [(axis.score(r), r) for r in rows]
    scored = [(s, r) for s, r in scored if not math.isnan(s)]
    return max(scored, key=lambda sr: sr[0])[1] if scored else None


def _table(rows: list[dict[str, Any]], path: str) -> None:
    import pandas as pd

    frame = pd.DataFrame(rows)
    frame.to_csv(path + ".csv", index=False)
    frame.to_parquet(path + ".parquet", index=False)


def write_results(sweep, rows: list[dict[str, Any]], errors: list[str], cost, reporter, *, sweep_id: str) -> Outcome:
    from raypriv.files import write_json_atomic
    from raypriv.manifest import build_manifest, write_manifest
    from raypriv.sweeps.frontier import pareto, plot_frontier
    from raypriv.sweeps.trials import trial_dir

    out = os.path.abspath(sweep.output)
    x, y = sweep.axes()
    if sweep.selection != "private":
        for line in errors:
            reporter(f"failed: {line}")
    if not rows:
        from raypriv.errors import RayprivError

        raise RayprivError(f"no trial of the sweep in {out} finished ({len(errors)} failed; see above)")
    _table(rows, os.path.join(out, "results"))
    front = pareto(rows, x=x, y=y)
    _table(front, os.path.join(out, "frontier"))
    private = sweep.selection == "private"
    count = "" if private else f": {len(rows)} trials"
    png = plot_frontier(rows, front, x=x, y=y, path=os.path.join(out, "frontier.png"),
                        title=f"{sweep.job}{count}" + (", scored on the validation split" if sweep.validation else ""))
    best = best_row(rows, sweep.objective())
    artifacts = {"results": os.path.join(out, "results.csv"), "frontier": os.path.join(out, "frontier.csv"),
                 "frontier_png": png}
    summary: dict[str, Any] = {"trials_finished": len(rows), "trials_failed": len(errors),
                               "frontier_size": len(front)}
    if best is not None:
        summary["best_trial"] = best["trial"]
        artifacts["best"] = trial_dir(sweep, best["trial"])
    if sweep.selection == "private":
        # only the winner is released; what reveals the number of trials stays in the sweep directory
        release = os.path.join(out, RELEASE_DIR)
        os.makedirs(release, exist_ok=True)
        write_json_atomic(os.path.join(release, "winner.json"), {
            "settings": {k: best[k] for k in sweep.space} if best else None,
            "objective": sweep.objective(), "score": best.get(sweep.objective().rpartition(":")[0]) if best else None,
            "privacy": {"epsilon": cost.sweep_epsilon, "delta": cost.delta, "selection": cost.selection,
                        "covers": "the training rows (the trials' DP training, selection included); the validation "
                                  "rows that scored the trials are not covered (see the sweep's manifest)"}})
        artifacts["release"] = release
        summary = {}
    metrics = {"sweep": summary, "privacy": {"sweep_epsilon": cost.sweep_epsilon,
                                             "max_trial_epsilon": max(cost.trial_epsilon, default=None)}}
    manifest = build_manifest(method="sweep", params={
        k: getattr(sweep, k) for k in ("job", "base", "space", "samples", "seed", "metric", "frontier", "validation",
                                       "data", "selection", "mean_trials", "eta", "trial_workers", "trial_cpus",
                                       "trial_gpus", "concurrent", "scheduler", "grace")},
        extra={"sweep_id": sweep_id, "objective": sweep.objective(), "axes": [str(x), str(y)],
               "best_trial": summary.get("best_trial"), "privacy": cost.to_dict(),
               "validation_split": "validation rows cut from the training split score the trials (their use is "
                                   "not covered by ε); the test split is not read" if sweep.validation else None,
               "private_outputs": "private selection: everything here but release/ reveals the number of trials "
                                  "and their scores; it stays with the data owner" if private else None,
               **({} if sweep.selection == "private" else
                  {"trials_finished": len(rows), "trials_failed": len(errors), "errors": errors,
                   "frontier": front})})
    write_manifest(out, manifest)
    _say(reporter, sweep, rows, front, best, cost, errors)
    privacy = None
    if cost.sweep_epsilon is not None:
        privacy = {"epsilon": cost.sweep_epsilon, "delta": cost.delta, "accountant": "rdp", "kind": cost.kind}
    return Outcome(artifacts=artifacts, metrics=metrics, privacy=privacy)


def _say(reporter, sweep, rows, front, best, cost, errors) -> None:
    x, y = sweep.axes()
    if sweep.selection != "private":
        reporter(f"{len(rows)} trials finished, {len(errors)} failed; frontier ({x.metric} vs {y.metric}):")
        for r in front:
            reporter(f"  trial {r['trial']:3d}  " + "  ".join(f"{k}={r[k]:g}" if isinstance(r[k], float) else
                                                            f"{k}={r[k]}" for k in sweep.space) +
                     f"  →  {x.metric} {r[x.metric]:.4g}, {y.metric} {r[y.metric]:.4g}")
    if best is not None:
        metric = sweep.objective().rpartition(":")[0]
        which = "the winner" if sweep.selection == "private" else f"trial {best['trial']}"
        reporter(f"best by {sweep.objective()}: {which} ({metric} {best.get(metric)})")
    if cost.sweep_epsilon is not None:
        reporter(f"privacy: the sweep spent ε = {cost.sweep_epsilon:.3f} at δ = {cost.delta:g} ({cost.kind}); "
                 f"one trial: ε ≤ {max(cost.trial_epsilon):.3f}")
    else:
        reporter(f"privacy: {cost.note}")
