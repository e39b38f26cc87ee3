"""What each trial of a sweep has done, as the trials themselves record it, so that a resumed
sweep charges every training it repeats and never repeats a finished one.

A trial writes ``started`` (durably) before its job touches the data and its final report when
the job has finished; the driver writes ``ended`` when Tune tells it a trial ended, finished or
stopped early by the scheduler (``attempts/<sweep id>/NNN.started|.json|.ended`` in the sweep's
storage, where Tune keeps its experiment: visible to every node when that is object storage).
On a resume:

* a trial with a final report returns it without running again, whatever Tune's last snapshot
  of the experiment says (Tune may have lost the trial's end when its driver died); one that
  ended without a report (stopped early) and that Tune runs again fails instead of training;
* a trial started but not ended (interrupted, or failed) runs again with fresh noise: a DP job
  that does not resume its own run within its plan (:attr:`raypriv.jobs.base.Job.RERUN_WITHIN_PLAN`)
  spends again, and the sweep charges those trials to the dataset's budget before Tune resumes
  (:func:`raypriv.sweeps.cost.charge_reruns`), at every resume that runs them again.

A trial that never started has nothing recorded and costs nothing more than its planned charge.

>>> import tempfile
>>> root = attempts_root(tempfile.mkdtemp(), "sweep-0123")
>>> for i in range(3): mark_started(root, i)
>>> mark_finished(root, 1, {"score": 0.5}); mark_ended(root, 2)
>>> finished_report(root, 1), finished_report(root, 0)
({'score': 0.5}, None)
>>> started_unfinished(root, range(4)), ended(root, 2), ended(root, 0)
([0], True, False)
"""
from __future__ import annotations

import json
from typing import Any, Iterable

from raypriv import storage

__all__ = ["attempts_root", "ended", "finished_report", "mark_ended", "mark_finished", "mark_started",
           "started_unfinished"]

ATTEMPTS_DIR = "attempts"


def attempts_root(tune_storage: str, sweep_id: str) -> str:
    """Where the trials of sweep ``sweep_id`` record their attempts (one sweep's records are
    never read as another's)."""
    return storage.join(tune_storage, ATTEMPTS_DIR, sweep_id)


def _path(root: str, index: int, suffix: str) -> str:
    return storage.join(root, f"{index:03d}.{suffix}")


def _has(root: str, index: int, suffix: str) -> bool:
    return storage.exists(_path(root, index, suffix))


def mark_started(root: str, index: int) -> None:
    storage.write_text(_path(root, index, "started"), "")


def mark_finished(root: str, index: int, report: dict[str, Any]) -> None:
    storage.write_text(_path(root, index, "json"), json.dumps(report))


def mark_ended(root: str, index: int) -> None:
    storage.write_text(_path(root, index, "ended"), "")


def ended(root: str, index: int) -> bool:
    """Whether Tune ended trial ``index`` (finished, or stopped early by the scheduler)."""
    return _has(root, index, "ended")


def finished_report(root: str, index: int) -> dict[str, Any] | None:
    """The final report trial ``index`` recorded, None if it has not finished."""
    return json.loads(storage.read_bytes(_path(root, index, "json"))) if _has(root, index, "json") else None


def started_unfinished(root: str, indices: Iterable[int]) -> list[int]:
    """The trials among ``indices`` that started but neither finished nor ended: what a resume
    runs again."""
    return [i for i in indices if _has(root, i, "started") and not (_has(root, i, "json") or ended(root, i))]
