"""The Ray Tune side of a sweep: one function trainable runs any job, and a Tuner runs (or
resumes) the trials.

Each trial runs its job in the trial's own process (a Tune function trainable), so a job that
trains with Ray Train nests its ``TorchTrainer`` there (Ray 2.60's Train/Tune interop: the trial
reports with ``ray.tune.report``, the Train workers with ``ray.train.report`` to their own
controller). A trial is its job's driver and, like a driver, holds no CPU; its group reserves one
for the data shuffles Tune captures there (:data:`TRIAL_BUNDLES`); its job's workers, actors and
other data tasks ask for their own (the sweep's ``trial_workers`` × ``trial_cpus``), never "the
whole cluster", and
``max_concurrent_trials`` bounds how many run at once, so a small machine runs them in turn
instead of deadlocking. A sweep whose Tune experiment exists is resumed with ``Tuner.restore``:
finished trials keep their results and are not run again.
"""
from __future__ import annotations

import contextlib
import os
from typing import Any

from raypriv.jobs.base import Reporter

__all__ = ["TRIAL_BUNDLES", "TrialReporter", "run_tuner"]

#: A trial's placement group: its own process (its job's driver) holds no CPU, the second bundle
#: one CPU and 2 GiB for the tasks Ray Data submits from it without a scheduling strategy
#: (shuffles, which ask for memory too), which Tune captures into the trial's group; the job's
#: workers, actors and other data tasks ask the cluster for their own. (A trial process holding
#: the group's only CPU left those captured shuffles nowhere to run.)
TRIAL_BUNDLES = ({"memory": 1}, {"CPU": 1, "memory": 2 * 1024 ** 3})


class TrialReporter(Reporter):
    """A job's reporter inside a Tune trial: progress lines go to the trial's log; metrics a job
    reports as it goes (``step=`` an epoch) go to Tune, where ASHA can stop a weak trial. The
    job's final metrics (no step) are kept: :func:`trial` reports them with ε."""

    def metrics(self, values, *, step: int | None = None) -> None:
        super().metrics(values, step=step)
        if step is not None:
            from ray import tune

            tune.report(dict(values))


def trial(config: dict[str, Any], attempts: str) -> None:
    """The Tune function trainable: build the trial's job from its settings, run it, report its
    Result's metrics (and ε) as the trial's last report; ``attempts`` is where the sweep's trials
    record theirs (:mod:`raypriv.sweeps.attempts`)."""
    from ray import tune

    from raypriv.errors import DataError
    from raypriv.jobs.registry import get_job, import_plugins
    from raypriv.runtime.execute import find_raypriv_error
    from raypriv.sweeps.attempts import ended, finished_report, mark_finished, mark_started

    spec = config["trial"]
    root, index = attempts, spec["index"]
    done = finished_report(root, index)
    if done is not None:            # it finished before (Tune's snapshot missed its end): not run again
        tune.report(done)
        return
    if ended(root, index):          # ended without a report: stopped early; training it again would go uncharged
        raise DataError(f"trial {index} was stopped early in an earlier run of this sweep; it is not run again")
    import_plugins(spec.get("imports", ()))
    job = get_job(spec["job"]).from_dict(spec["settings"])
    mark_started(root, index)       # before the job touches the data: a resume charges a re-run of it
    try:
        result = job.run(TrialReporter())
    except Exception as e:  # noqa: BLE001 - a trial's error is recorded as its one line
        found = find_raypriv_error(e)
        raise (found or e) from None
    privacy = result.privacy or {}
    final = {**result.metrics, "trial": index, "wall_time_s": result.wall_time_s, "finished": 1}
    if privacy.get("epsilon") is not None:
        final["epsilon"] = privacy["epsilon"]
    mark_finished(root, index, final)
    tune.report(final)


def _progress(reporter, objective: str, total: int | None, attempts: str):
    """A Tune callback (in the driver) giving the reporter a line as each trial ends, and
    recording its end in ``attempts``; with ``total=None`` (private selection) the line names
    neither the trial, nor a count, nor a score: job logs may be read by more people than the data
    owner, and those reveal the number of trials."""
    from ray import tune

    from raypriv.sweeps.attempts import mark_ended

    metric = objective.rpartition(":")[0]

    class Progress(tune.Callback):
        done = 0

        def _line(self, trial, what: str) -> str:
            Progress.done += 1
            if total is None:
                return f"a trial {what}"
            value = (trial.last_result or {}).get(metric) if what == "finished" else None
            shown = f": {metric} {value:.4g}" if isinstance(value, (int, float)) else ""
            return f"trial {trial.config['trial']['index']} {what} ({Progress.done}/{total}){shown}"

        def on_trial_complete(self, iteration, trials, trial, **info):
            mark_ended(attempts, trial.config["trial"]["index"])
            reporter(self._line(trial, "finished"))

        def on_trial_error(self, iteration, trials, trial, **info):
            reporter(self._line(trial, "failed"))

    return Progress()


def _scheduler(sweep):
    if sweep.scheduler != "asha":
        return None
    from ray.tune.schedulers import ASHAScheduler

    metric, _, mode = sweep.objective().rpartition(":")
    return ASHAScheduler(metric=metric, mode=mode, grace_period=sweep.grace, time_attr="training_iteration")


@contextlib.contextmanager
def _tune_output_off():
    """Tune's own console tables off while the sweep runs (the reporter gets a line per ended
    trial, then the frontier and the errors); ``RAY_AIR_NEW_OUTPUT`` set by the user is kept."""
    given = os.environ.get("RAY_AIR_NEW_OUTPUT")
    os.environ["RAY_AIR_NEW_OUTPUT"] = given if given is not None else "0"
    try:
        yield
    finally:
        if given is None:
            os.environ.pop("RAY_AIR_NEW_OUTPUT", None)


def run_tuner(sweep, params: list[dict], reporter, *, sweep_id: str) -> tuple[list[dict], list[str]]:
    """Run (or resume) the trials; return ``(rows, errors)``: a row per trial that finished (its
    settings, then its metrics) and a line per trial that failed."""
    from ray import tune

    from raypriv.runtime.execute import find_raypriv_error
    from raypriv.sweeps.attempts import attempts_root
    from raypriv.sweeps.trials import TUNE_NAME, trial_settings

    path, root = sweep.tune_path(), attempts_root(sweep.tune_storage(), sweep_id)
    trainable = tune.with_resources(tune.with_parameters(trial, attempts=root),
                                    tune.PlacementGroupFactory([dict(b) for b in TRIAL_BUNDLES]))
    if tune.Tuner.can_restore(path):
        reporter(f"resuming the Tune experiment in {path}: finished trials are kept, the rest run")
        tuner = tune.Tuner.restore(path, trainable=trainable, resume_errored=True)
    else:
        specs = [{"index": i, "job": sweep.job, "imports": list(sweep.imports), "settings": trial_settings(sweep, p, i)}
                 for i, p in enumerate(params)]
        tuner = tune.Tuner(
            trainable,
            param_space={"trial": tune.grid_search(specs)},
            tune_config=tune.TuneConfig(max_concurrent_trials=sweep.concurrent, scheduler=_scheduler(sweep),
                                        reuse_actors=False),
            run_config=tune.RunConfig(storage_path=sweep.tune_storage(), name=TUNE_NAME, verbose=0,
                                      callbacks=[_progress(reporter, sweep.objective(), None if
                                                           sweep.selection == "private" else len(specs), root)],
                                      failure_config=tune.FailureConfig(max_failures=0)))
    with _tune_output_off():
        grid = tuner.fit()
    rows, errors = [], []
    for result in grid:
        index = result.config["trial"]["index"]
        if result.error is not None:
            found = find_raypriv_error(result.error)
            text = str(found if found is not None else result.error).strip().splitlines()
            errors.append(f"trial {index}: {text[-1] if text else type(result.error).__name__}")
            continue
        metrics = {k: v for k, v in (result.metrics or {}).items() if isinstance(v, (int, float))
                   and not isinstance(v, bool)}
        rows.append({"trial": index, **params[index], **{k: metrics[k] for k in sorted(metrics)
                                                        if not k.startswith(("config/", "time_", "timestamp",
                                                                             "pid", "iterations_since"))},
                     "stopped_early": int(not metrics.get("finished"))})
    rows.sort(key=lambda r: r["trial"])
    return rows, errors
