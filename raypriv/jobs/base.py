"""The Job/Result contract every technique follows, and the Reporter that receives progress.

A job is a frozen keyword-only dataclass of settings, built from a mapping by
:meth:`Job.from_dict` (YAML, ``--set``, CLI flags and a Tune ``param_space`` all go this way)
and run with :meth:`Job.run`, which returns a :class:`Result`: the artifacts it wrote, a flat
dict of numeric metrics, the privacy it spent and its wall time. A subclass declares its fields
(with :func:`raypriv.configs.setting`) and implements :meth:`Job.execute`; the registry
(:mod:`raypriv.jobs.registry`) makes it a CLI command and a ``jobs/`` workload.

>>> import dataclasses
>>> from raypriv.configs import setting
>>> @dataclasses.dataclass(frozen=True, kw_only=True)
... class Square(Job):
...     name = "square"
...     x: int = setting(3, help="the number")
...     def execute(self, reporter):
...         reporter(f"squaring {self.x}")
...         return Outcome(metrics={"y": self.x ** 2})
>>> result = Square.from_dict({"x": 4}).run(Reporter(quiet=True))
>>> result.metrics
{'y': 16}
"""
from __future__ import annotations

import dataclasses
import math
import time
from typing import TYPE_CHECKING, Any, ClassVar, Mapping

from raypriv.configs import build, setting
from raypriv.runtime import ResourceSpec

if TYPE_CHECKING:  # pragma: no cover
    from raypriv.privacy.accounting import PrivacyPlan

__all__ = ["Job", "Outcome", "Reporter", "Result", "flat_metrics"]


class Reporter:
    """Receives a job's progress lines (``reporter(line)``) and metrics (``reporter.metrics``).

    The default prints both; ``quiet=True`` keeps them (``lines``, ``reported``) without printing.
    A Tune trial's reporter forwards metrics to Tune instead.
    """

    def __init__(self, *, quiet: bool = False):
        self.quiet = quiet
        self.lines: list[str] = []
        self.reported: list[dict[str, float]] = []

    def __call__(self, line: str) -> None:
        self.lines.append(line)
        if not self.quiet:
            print(line, flush=True)

    def metrics(self, values: Mapping[str, float], *, step: int | None = None) -> None:
        self.reported.append(dict(values))


def flat_metrics(values: Mapping[str, Any], *, prefix: str = "") -> dict[str, float]:
    """The finite numbers in a nested mapping, under dotted keys (``{"a": {"b": 1}}`` → ``{"a.b": 1}``);
    strings, lists and ``None`` are left out (they are in the artifacts' reports)."""
    out: dict[str, float] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flat_metrics(value, prefix=f"{name}."))
        elif isinstance(value, bool):
            out[name] = int(value)
        elif isinstance(value, (int, float)) and math.isfinite(value):
            out[name] = value
    return out


@dataclasses.dataclass(frozen=True, kw_only=True)
class Outcome:
    """What :meth:`Job.execute` returns: artifact paths by role, metrics (may be nested) and the
    privacy spent (``epsilon``, ``delta``, ``accountant``, per-stage details) or ``None``."""

    artifacts: dict[str, str] = dataclasses.field(default_factory=dict)
    metrics: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    privacy: dict[str, Any] | None = None


@dataclasses.dataclass(frozen=True, kw_only=True)
class Result:
    """What a run of a job produced; what sweeps and reports compare."""

    job: str
    artifacts: dict[str, str]
    metrics: dict[str, float]
    privacy: dict[str, Any] | None
    wall_time_s: float

    def lines(self) -> list[str]:
        """The summary the CLI prints: artifacts, then ε if any was spent."""
        out = [f"{role}: {path}" for role, path in self.artifacts.items()]
        if self.privacy and self.privacy.get("epsilon") is not None:
            out.append(f"privacy: ε = {self.privacy['epsilon']:.3f}, δ = {self.privacy['delta']:g} "
                       f"({self.privacy.get('accountant', '?')} accountant)")
        return out

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Job:
    """Base class of every job. Subclasses set ``name`` (``"synth.teacher"``: the CLI command
    ``raypriv synth teacher``), a docstring whose first line is the command's help, their
    settings, and :meth:`execute`."""

    name: ClassVar[str] = ""
    #: Settings that name local (or mounted) directories: checkpoints, ledgers, reports, teacher
    #: weights. A URI there is refused when the job is built, before any work (a corpus written
    #: through pyarrow may be a URI: those settings are not listed).
    LOCAL_PATHS: ClassVar[tuple[str, ...]] = ()
    #: Settings that name run storage (checkpoints, a Tune experiment): a local path or a URI of a
    #: filesystem pyarrow ships (:func:`raypriv.storage.location`), checked when the job is built.
    STORAGE_PATHS: ClassVar[tuple[str, ...]] = ()
    #: What ``raypriv sweep`` optimizes by default (``"metric:max"``) and the frontier it draws
    #: (privacy or protection vs utility), as flat metric names of the job's Result.
    SWEEP_METRIC: ClassVar[str | None] = None
    SWEEP_FRONTIER: ClassVar[tuple[str, str] | None] = None
    #: Whether running the job again with the same output resumes its own run and ledger, so that
    #: what it spends across the two stays within :meth:`planned_privacy` (DP²-VAE). A sweep
    #: resuming a DP job without it charges each trial it runs again (:mod:`raypriv.sweeps.attempts`).
    RERUN_WITHIN_PLAN: ClassVar[bool] = False
    resources: ResourceSpec | None = setting(
        None, flag=False, help="workers and what each holds (default: chosen from the connected cluster)")

    def __post_init__(self):
        from raypriv.files import local_dir
        from raypriv.storage import location

        for name in self.LOCAL_PATHS:
            if getattr(self, name) is not None:
                local_dir(getattr(self, name), what=name)
        for name in self.STORAGE_PATHS:
            if getattr(self, name) is not None:
                location(getattr(self, name), what=name)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Job":
        """The job from a plain mapping; unknown or invalid keys are a ConfigError naming them."""
        return build(cls, d)

    @classmethod
    def summary(cls) -> str:
        return (cls.__doc__ or cls.name).strip().split("\n")[0].rstrip(".")

    def cluster(self) -> ResourceSpec:
        """The resources to run with: the job's own, else chosen from the connected cluster."""
        return self.resources or ResourceSpec.auto()

    def planned_privacy(self) -> "PrivacyPlan | None":
        """The DP mechanisms a run will apply to its private training data, known before it
        runs (what a sweep charges the dataset's budget); None for a job that claims no DP
        guarantee. A DP job overrides it."""
        return None

    def execute(self, reporter: Reporter) -> Outcome:  # pragma: no cover - abstract
        raise NotImplementedError

    def run(self, reporter: Reporter | None = None) -> Result:
        """Run the job (on the connected Ray, or an embedded local one) and return its Result;
        the reporter also receives the final metrics."""
        reporter = reporter if reporter is not None else Reporter()
        start = time.monotonic()
        out = self.execute(reporter)
        result = Result(job=self.name, artifacts=dict(out.artifacts), metrics=flat_metrics(out.metrics),
                        privacy=out.privacy, wall_time_s=round(time.monotonic() - start, 3))
        reporter.metrics(result.metrics)
        return result
