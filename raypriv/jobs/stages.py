"""Jobs that write one directory each, and pipelines of them.

A :class:`Stage` writes ``output``, whose ``manifest.json`` is written last: the one
"finished?" rule (:func:`raypriv.manifest.is_finished`). :func:`run_stages` runs a pipeline's
stages in order and reuses every finished one, so a failed pipeline is resubmitted unchanged.
"""
from __future__ import annotations

from typing import Any, ClassVar

from raypriv.errors import ArtifactError
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


def _check_order(stages: list[tuple[str, Stage]]) -> list[bool]:
    """Which stages are finished; an ArtifactError (before anything runs) if a finished stage
    follows one that is not: it was made from an output that is gone or was never finished, and
    the stage before it would be made again."""
    done = [stage.finished() for _, stage in stages]
    if False in done:
        first = done.index(False)
        stage = stages[first][1]
        later = next((s for (_, s), d in zip(stages[first + 1:], done[first + 1:]) if d), None)
        if later is not None:
            raise ArtifactError(f"{later.output} holds a finished {later.what}, but {stage.output} "
                                f"before it in the pipeline is not finished (removed, or never finished): "
                                f"remove {later.output} to make it again from a new {stage.what}, or "
                                "choose a new output")
    return done


def run_stages(stages: list[tuple[str, Stage]], reporter) -> Outcome:
    """Run each ``(key, stage)`` unless its output is finished (then reuse it); the outcomes
    merged, artifacts and metrics under each stage's key. Each stage reads what the ones before
    it wrote, so a finished stage after an unfinished one (made from an output since removed)
    is refused before anything runs, rather than reused; nothing is deleted."""
    artifacts: dict[str, str] = {}
    metrics: dict[str, Any] = {}
    privacy = None
    for (key, stage), done in zip(stages, _check_order(stages)):
        if done:
            reporter(f"reusing {stage.what} {stage.output}")
            out = stage.collect()
        else:
            out = stage.execute(reporter)
        artifacts[key] = stage.output
        artifacts.update({f"{key}.{role}": path for role, path in out.artifacts.items() if path != stage.output})
        metrics[key] = out.metrics
        privacy = out.privacy or privacy
    return Outcome(artifacts=artifacts, metrics=metrics, privacy=privacy)
