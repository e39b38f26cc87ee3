"""The protection check as a job: ``raypriv evaluate`` and ``jobs/evaluate_unlearnable.py``.

>>> job = EvaluateJob.from_dict({"clean": "digits", "protected": "/tmp/ue", "output": "/tmp/ev",
...                              "evaluate": {"victim": {"epochs": 3}, "partial": [0.5]}})
>>> job.evaluate.victim.epochs, job.evaluate.partial
(3, (0.5,))
"""
from __future__ import annotations

import dataclasses
import os

from raypriv.configs import setting
from raypriv.evaluate.config import EvaluateConfig
from raypriv.jobs.base import Outcome
from raypriv.jobs.registry import register_job
from raypriv.jobs.stages import ReportStage


@register_job
@dataclasses.dataclass(frozen=True, kw_only=True)
class EvaluateJob(ReportStage):
    """Train victims on clean vs protected data and compare.

    Writes ``output/report.json`` (rewritten after every victim), ``grid.png`` and, last,
    ``manifest.json``."""

    name = "evaluate"
    what = "evaluation"
    files = {"grid": "grid.png"}
    LOCAL_PATHS = ('output',)
    clean: str = setting(help="spec of the clean corpus (its test split is the test set)")
    protected: str = setting(help="directory written by `raypriv protect`")
    output: str = setting(short="-o", help="where report.json and grid.png go")
    test_split: str = setting("test", help="split of the clean corpus that is the test set")
    evaluate: EvaluateConfig = setting(default_factory=EvaluateConfig, flatten=True, help="what to compare")

    def execute(self, reporter) -> Outcome:
        from raypriv.data import load_corpus
        from raypriv.evaluate.report import evaluate_protection, format_table

        report = evaluate_protection(
            clean=load_corpus(self.clean, split="train"), protected=load_corpus(f"parquet:{self.protected}"),
            test=load_corpus(self.clean, split=self.test_split), config=self.evaluate, resources=self.cluster(),
            out_dir=self.output, progress=reporter)
        reporter(format_table(report))
        return outcome_of_report(report, self.output)

    def metrics_of_report(self, report: dict) -> dict:
        return dict(outcome_of_report(report, self.output).metrics)


def outcome_of_report(report: dict, out_dir: str) -> Outcome:
    """Artifacts and headline metrics of an evaluation report (per defense under its name)."""
    s = dict(report.get("summary") or {})
    by_defense = {d.pop("defense"): d for d in (dict(x) for x in s.pop("by_defense", []))}
    return Outcome(artifacts={"report": os.path.join(out_dir, "report.json"),
                              "grid": os.path.join(out_dir, "grid.png")},
                   metrics={**s, "by_defense": by_defense})
