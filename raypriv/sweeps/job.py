"""``raypriv sweep``: a Ray Tune sweep over any registered job's settings.

>>> job = SweepJob.from_dict({"job": "dpvae.pipeline", "output": "/tmp/s", "budget": "/tmp/b",
...     "base": {"source": "mnist5k", "output": "ignored", "train": {"dataset_size": 3200}},
...     "space": {"train.epsilon": {"grid": [1, 3, 10]}}})
>>> job.objective(), [str(a) for a in job.axes()]
('eval.downstream_test_acc:max', ['model.epsilon_spent:min', 'eval.downstream_test_acc:max'])
"""
from __future__ import annotations

import dataclasses
import os
from typing import Any

from raypriv.configs import setting
from raypriv.errors import ConfigError
from raypriv.jobs.base import Job, Outcome
from raypriv.jobs.registry import register_job
from raypriv.runtime import ResourceSpec

__all__ = ["SweepJob"]

SELECTIONS = ("all", "private")
SCHEDULERS = ("fifo", "asha")


@register_job
@dataclasses.dataclass(frozen=True, kw_only=True)
class SweepJob(Job):
    """Tune a job's settings with Ray Tune: trials, Pareto frontier, and the sweep's privacy cost.

    Every trial is the job built from ``base`` with the trial's ``space`` settings laid over
    it (the same dict → job path as YAML and ``--set``), writing into ``output/trials/NNN``.
    Settings are chosen on a validation split cut from the training data (``validation``),
    never on the test split."""

    name = "sweep"
    LOCAL_PATHS = ("output", "budget")
    STORAGE_PATHS = ("storage",)
    job: str = setting(help="the registered job to tune (e.g. dpvae.pipeline, mtk.pipeline)")
    imports: tuple[str, ...] = setting((), help="modules to import first (in the driver and in every trial) that "
                                               "register jobs of their own")
    output: str = setting(short="-o", help="sweep directory (trials/, results, frontier, manifest)")
    base: dict = setting(default_factory=dict, flag=False, help="the job's settings every trial starts from")
    space: dict = setting(default_factory=dict, flag=False,
                          help="dotted job settings to vary: {grid|choice|uniform|loguniform|randint: [...]}")
    samples: int = setting(1, help="repetitions of the grid (other dimensions drawn anew each time)")
    seed: int = setting(0, help="seeds the draws of non-grid dimensions")
    metric: str | None = setting(None, help="the objective, 'metric:max' or 'metric:min' (default: the job's)")
    frontier: tuple[str, ...] | None = setting(None, help="the frontier's axes x,y as 'metric:min|max' "
                                                          "(default: the job's privacy/protection vs utility)")
    validation: float = setting(0.2, help="share of the training split held out to score trials on (the job's "
                                          "test split is replaced by it)")
    data: str = setting("private", choices=("private", "public"),
                        help="whether the training data is private (DP trials are charged) or public (free)")
    selection: str = setting("all", choices=SELECTIONS,
                             help="all: run every trial, charge them all composed; private: a secret random "
                                  "number of random trials, only the best released (Papernot & Steinke)")
    mean_trials: float = setting(8.0, help="private selection: the expected number of trials E[K]")
    eta: float = setting(1.0, help="private selection: the shape η of K's truncated negative binomial "
                                   "(1: geometric, 0: logarithmic)")
    storage: str | None = setting(None, help="where Ray Tune keeps the experiment (trial state and checkpoints) and "
                                             "the trials' Ray Train checkpoints: a directory or a pyarrow URI "
                                             "(s3://bucket/sweep; default: output)")
    budget: str | None = setting(None, help="budget directory: the dataset's privacy ledger (local or shared fs)")
    epsilon_budget: float | None = setting(None, help="refuse a sweep that would take the dataset past this ε")
    trial_workers: int = setting(1, help="workers of each trial's job")
    trial_cpus: float = setting(1.0, help="CPUs each of a trial's workers holds")
    trial_gpus: float = setting(0.0, help="GPUs each of a trial's workers holds")
    concurrent: int = setting(1, help="trials running at once (bounded so a small machine cannot deadlock)")
    scheduler: str = setting("fifo", choices=SCHEDULERS,
                             help="asha: stop weak trials early on the metrics a job reports per epoch")
    grace: int = setting(1, help="ASHA: reports a trial makes before it may be stopped")

    def __post_init__(self):
        super().__post_init__()
        from raypriv.jobs.registry import get_job, import_plugins

        import_plugins(self.imports)
        cls = get_job(self.job)
        if cls is SweepJob:
            raise ConfigError("job", "a sweep cannot tune a sweep")
        if not 0.0 <= self.validation < 1.0:
            raise ConfigError("validation", f"must be in [0, 1), got {self.validation}")
        for name in ("samples", "trial_workers", "concurrent", "grace"):
            if getattr(self, name) < 1:
                raise ConfigError(name, f"must be >= 1, got {getattr(self, name)}")
        reserved = {"output", "resources"} & {str(k).split(".")[0] for k in self.space}
        if reserved:
            raise ConfigError(f"space.{sorted(reserved)[0]}", "is set by the sweep for every trial (its own output "
                                                             "directory, the trial resources): not a setting to vary")
        for where, keys in (("base", self.base), ("space", self.space)):
            if "checkpoints" in {str(k).split(".")[0] for k in keys}:
                raise ConfigError(f"{where}.checkpoints", "trials would share one checkpoints location: set the "
                                                          "sweep's storage instead (each trial gets storage/trials/NNN)")
        self.trial_resources()                                  # its own checks, named
        if self.epsilon_budget is not None and not self.epsilon_budget > 0:
            raise ConfigError("epsilon_budget", f"must be > 0, got {self.epsilon_budget}")
        if self.selection == "private":
            from raypriv.privacy.selection import TruncatedNegativeBinomial

            TruncatedNegativeBinomial.with_mean(self.mean_trials, eta=self.eta)
        if self.selection == "private" and self.scheduler != "fifo":
            raise ConfigError("scheduler", "private selection runs every trial to the end (early stopping would "
                                           "make one trial's fate depend on another's data)")
        self.objective()
        self.axes()
        from raypriv.sweeps.space import parse_space

        parse_space(self.space)

    # -- what the sweep optimizes -------------------------------------------------------------
    def tune_storage(self) -> str:
        """Tune's ``storage_path``: ``storage``, by default ``output`` (absolute)."""
        from raypriv.storage import location

        return location(self.storage, what="storage") if self.storage else os.path.abspath(self.output)

    def tune_path(self) -> str:
        """The Tune experiment's directory (or URI): ``storage/tune``, by default ``output/tune``."""
        from raypriv import storage
        from raypriv.sweeps.trials import TUNE_NAME

        return storage.join(self.tune_storage(), TUNE_NAME)

    def job_class(self) -> type:
        from raypriv.jobs.registry import get_job, import_plugins

        import_plugins(self.imports)
        return get_job(self.job)

    def objective(self) -> str:
        from raypriv.sweeps.frontier import Axis

        text = self.metric or getattr(self.job_class(), "SWEEP_METRIC", None)
        if not text:
            raise ConfigError("metric", f"job {self.job!r} names no default objective: give metric=NAME:max|min")
        return str(Axis.parse(text, what="metric"))

    def axes(self):
        from raypriv.sweeps.frontier import Axis

        texts = self.frontier or getattr(self.job_class(), "SWEEP_FRONTIER", None)
        if not texts or len(texts) != 2:
            raise ConfigError("frontier", f"expected two axes 'x:min|max,y:min|max', got {texts!r}")
        return tuple(Axis.parse(t) for t in texts)

    def trial_resources(self) -> ResourceSpec:
        return ResourceSpec(workers=self.trial_workers, cpus_per_worker=self.trial_cpus,
                            gpus_per_worker=self.trial_gpus)

    def execute(self, reporter) -> Outcome:
        from raypriv.sweeps.run import run_sweep

        return run_sweep(self, reporter)
