"""A stand-in job for the sweep tests (imported by the sweeps through ``imports``): it "trains"
for ``epochs``, reporting a score per epoch, and can claim a DP plan so a sweep charges it."""
import dataclasses
import os
import time

from raypriv.configs import setting
from raypriv.errors import DataError
from raypriv.jobs.base import Job, Outcome
from raypriv.jobs.registry import register_job

MODULE = __name__


def starts(out, index: int) -> int:
    """How many times the stand-in job of trial ``index`` of the sweep in ``out`` started."""
    path = os.path.join(out, "trials", f"{index:03d}", "starts")
    return len(open(path).read().splitlines()) if os.path.exists(path) else 0


@register_job
@dataclasses.dataclass(frozen=True, kw_only=True)
class SleepJob(Job):
    """Stand-in for sweep tests: score = quality after ``epochs`` epochs of ``seconds`` each."""

    name = "sweeptest"
    SWEEP_METRIC = "score:max"
    SWEEP_FRONTIER = ("cost:min", "score:max")
    output: str = setting(help="where the job writes its start marks")
    quality: float = setting(0.5, help="the final score")
    epochs: int = setting(2, help="epochs, each reported")
    seconds: float = setting(0.0, help="seconds per epoch")
    fail: bool = setting(False, help="raise a raypriv error instead of finishing")
    fail_first: bool = setting(False, help="raise a raypriv error on the first run only")
    sigma: float | None = setting(None, help="claim a DP plan of 1,000 steps at σ, q = 0.01 on digits")

    def planned_privacy(self):
        if self.sigma is None:
            return None
        from raypriv.privacy.accounting import Mechanism, PrivacyPlan

        return PrivacyPlan(mechanisms=(Mechanism(sigma=self.sigma, sample_rate=0.01, steps=1000),), delta=1e-5,
                           accountant="rdp", source="digits")

    def execute(self, reporter):
        os.makedirs(self.output, exist_ok=True)
        with open(os.path.join(self.output, "starts"), "a") as f:
            f.write(f"{time.time()}\n")
        for epoch in range(1, self.epochs + 1):
            time.sleep(self.seconds)
            reporter.metrics({"score": self.quality * epoch / self.epochs}, step=epoch)
        first = len(open(os.path.join(self.output, "starts")).read().splitlines()) == 1
        if self.fail or (self.fail_first and first):
            raise DataError(f"{self.output}: the stand-in was told to fail")
        return Outcome(metrics={"score": self.quality, "cost": self.quality ** 2})


@register_job
@dataclasses.dataclass(frozen=True, kw_only=True)
class ResumingSleepJob(SleepJob):
    """Stand-in for sweep tests: a SleepJob that declares it resumes its own run within its plan."""

    name = "sweeptest-resuming"
    RERUN_WITHIN_PLAN = True


def _tiny_loop(config):
    """A Ray Train loop: every worker reports ``scale × world size`` once (rank 0 with a checkpoint)."""
    from raypriv.runtime.train import report, worker_context

    ctx = worker_context(config, seed=0)
    report({"value": config["scale"] * ctx.world}, rank=ctx.rank, state={"scale": config["scale"]})


@register_job
@dataclasses.dataclass(frozen=True, kw_only=True)
class TinyTrainJob(Job):
    """Stand-in for sweep tests: one Ray Train run through raypriv's launcher (a TorchTrainer)."""

    name = "sweeptest-train"
    SWEEP_METRIC = "value:max"
    SWEEP_FRONTIER = ("scale:min", "value:max")
    output: str = setting(help="the Ray Train run's storage")
    scale: float = setting(1.0, help="what the workers report, times their number")

    def execute(self, reporter):
        from raypriv.runtime.train import fit

        result = fit(_tiny_loop, config={"scale": self.scale}, resources=self.cluster(), storage_path=self.output,
                     name="tiny", datasets={}, what="stand-in")
        return Outcome(metrics={"value": result.metrics["value"], "scale": self.scale})
