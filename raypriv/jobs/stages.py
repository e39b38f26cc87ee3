"""Jobs that write one directory each, and pipelines of them.

A :class:`Stage` writes ``output``, whose ``manifest.json`` is written last: the one
"finished?" rule (:func:`raypriv.manifest.is_finished`). :func:`run_stages` runs a pipeline's
stages in order and reuses every finished one, so a failed pipeline is resubmitted unchanged.
"""
from __future__ import annotations

from typing import Any, ClassVar

from raypriv.jobs.base import Job, Outcome

__all__ = ["ReportStage", "Stage", "run_stages"]


class Stage(Job):
    """A job that writes one finished-or-not directory, ``output``: :meth:`collect` reads the
    outcome back from it, so a reused stage reports the same as a fresh one."""

    what: ClassVar[str] = "output"

    def finished(self) -> bool:
        from raypriv.manifest import is_finished

        return is_finished(self.output)

    def collect(self) -> Outcome:
        from raypriv.manifest import read_manifest

        m = read_manifest(self.output)
        return Outcome(artifacts={self.what_key(): self.output}, metrics=self.metrics_of(m))

    def metrics_of(self, manifest: dict) -> dict[str, Any]:
        """The stage's metrics from its manifest (default: the rows of a written corpus)."""
        return {"rows": manifest["rows"]} if "rows" in manifest else {}

    @classmethod
    def what_key(cls) -> str:
        return cls.name.rsplit(".", 1)[-1]


class ReportStage(Stage):
    """A stage whose output is an evaluation: ``report.json`` (plus pictures) and its manifest.
    Subclasses say which files it holds (``files``) and which report keys are metrics (:meth:`metrics_of_report`)."""

    files: ClassVar[dict[str, str]] = {}

    @classmethod
    def what_key(cls) -> str:
        return "report"

    def read_report(self) -> dict[str, Any]:
        import json
        import os

        from raypriv.manifest import REPORT_NAME

        with open(os.path.join(self.output, REPORT_NAME), encoding="utf-8") as f:
            return json.load(f)

    def metrics_of_report(self, report: dict[str, Any]) -> dict[str, Any]:
        return {}

    def collect(self) -> Outcome:
        import os

        from raypriv.manifest import REPORT_NAME

        artifacts = {"report": os.path.join(self.output, REPORT_NAME),
                     **{role: os.path.join(self.output, name) for role, name in self.files.items()}}
        return Outcome(artifacts=artifacts, metrics=self.metrics_of_report(self.read_report()))


def run_stages(stages: list[tuple[str, Stage]], reporter) -> Outcome:
    """Run each ``(key, stage)`` unless its output is finished (then reuse it); the outcomes
    merged, artifacts and metrics under each stage's key. Each stage reads what the ones before
    it wrote, so once a stage has run again (its output was removed), a later stage's finished
    output was made from the old one: refused (ArtifactError) rather than reused, nothing
    deleted.
    """
    from raypriv.errors import ArtifactError

    artifacts: dict[str, str] = {}
    metrics: dict[str, Any] = {}
    privacy = None
    made = None                 # the first stage that ran (was not reused) in this call
    for key, stage in stages:
        if stage.finished():
            if made is not None:
                raise ArtifactError(f"{stage.output} holds a finished {stage.what} made from an earlier {made.what} "
                                    f"than the one just made in {made.output}: remove {stage.output} to make it "
                                    "again from the new one, or choose a new output")
            reporter(f"reusing {stage.what} {stage.output}")
            out = stage.collect()
        else:
            made = made or stage
            out = stage.execute(reporter)
        artifacts[key] = stage.output
        artifacts.update({f"{key}.{role}": path for role, path in out.artifacts.items() if path != stage.output})
        metrics[key] = out.metrics
        privacy = out.privacy or privacy
    return Outcome(artifacts=artifacts, metrics=metrics, privacy=privacy)
