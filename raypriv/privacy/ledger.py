"""The privacy ledger: every DP-SGD step is written down, durably, *before* it is taken.

A ledger is a JSON-lines file. Its first line is the header (budget, accountant, the
planned stages with their σ and sample rate); every further line charges one step of one
stage. Each line is flushed and ``fsync``-ed before the step runs, so after a crash the
ledger counts every step that may have touched the data, including those after the last
checkpoint (a step charged but not finished is counted too: the error is on the safe side).

Several processes may hold the same ledger (two runs started on one directory by mistake):
:meth:`PrivacyLedger.charge` takes an exclusive lock on the file, re-reads the durable count
and only then appends, so the planned steps are charged once in total however many
processes ask; :meth:`PrivacyLedger.create` refuses a path that exists, atomically.

Resuming reads the ledger back: a stage continues from the number of steps *charged*, not
from its last checkpoint, so lost steps are never run twice and the plan's ε is never
exceeded. A stage whose planned steps are all charged cannot take another step
(:class:`BudgetExhaustedError`).

>>> import tempfile, os
>>> from raypriv.privacy.ledger import PrivacyLedger
>>> path = os.path.join(tempfile.mkdtemp(), "ledger.jsonl")
>>> led = PrivacyLedger.create(path, epsilon=1.0, delta=1e-5, accountant="rdp",
...                            stages=[{"name": "main", "sigma": 1.1, "sample_rate": 0.01, "steps": 2}])
>>> led.charge("main"); led.charge("main")
1
2
>>> PrivacyLedger.open(path).charged("main")
2
>>> led.charge("main")
Traceback (most recent call last):
...
raypriv.privacy.ledger.BudgetExhaustedError: stage 'main' has charged all 2 planned steps; the budget (ε = 1, δ = 1e-05) is spent
"""
from __future__ import annotations

import fcntl
import json
import os
import time
from typing import Any

from raypriv.errors import ArtifactError, RayprivError
from raypriv.files import write_new

LEDGER_NAME = "privacy-ledger.jsonl"


def _add_counts(counts: dict[str, int], data: bytes) -> int:
    """Fold the step lines in ``data`` into ``counts``; return the bytes of complete lines read
    (a torn last line, not yet durable when its step would have started, is left unread)."""
    end = data.rfind(b"\n") + 1
    for line in data[:end].splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue                              # a torn line that a later charge closed
        if isinstance(rec, dict) and rec.get("stage") in counts and isinstance(rec.get("step"), int):
            counts[rec["stage"]] = max(counts[rec["stage"]], rec["step"])
    return end


class BudgetExhaustedError(RayprivError):
    """A DP step was requested beyond the planned (and paid-for) steps."""


class PrivacyLedger:
    """Append-only record of charged DP steps; see the module docstring."""

    def __init__(self, path: str, header: dict[str, Any], counts: dict[str, int], offset: int):
        self.path = path
        self.header = header
        self._counts = counts
        self._offset = offset                    # bytes of the file folded into _counts
        self._plan = {s["name"]: s for s in header["stages"]}

    # -- creating and reading -------------------------------------------------------------
    @classmethod
    def create(cls, path: str, *, epsilon: float, delta: float, accountant: str,
               stages: list[dict[str, Any]], extra: dict[str, Any] | None = None) -> "PrivacyLedger":
        """Start a new ledger; refuses to overwrite one (a spent budget cannot be reset), even
        when two processes create it at once."""
        for s in stages:
            missing = {"name", "sigma", "sample_rate", "steps"} - set(s)
            if missing:
                raise ValueError(f"stage {s} lacks {sorted(missing)}")
        header = {"kind": "raypriv-privacy-ledger", "version": 1, "epsilon": float(epsilon), "delta": float(delta),
                  "accountant": accountant, "stages": stages, "created": time.time(), **(extra or {})}
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        if not write_new(path, (json.dumps(header) + "\n").encode()):     # atomic: no two runs create one
            raise ArtifactError(f"{path}: a privacy ledger already exists; resume the run instead of "
                                "starting over (its steps stay charged)")
        return cls(path, header, {s["name"]: 0 for s in stages}, os.path.getsize(path))

    @classmethod
    def open(cls, path: str) -> "PrivacyLedger":
        """Read an existing ledger (every charged line counts; a torn last line is ignored,
        since it was not yet durable when the step would have started)."""
        if not os.path.exists(path):
            raise ArtifactError(f"{path}: no privacy ledger here")
        with open(path, "rb") as f:
            data = f.read()
        first = data.find(b"\n") + 1
        try:
            header = json.loads(data[:first])
        except json.JSONDecodeError:
            raise ArtifactError(f"{path}: unreadable ledger header") from None
        if not isinstance(header, dict) or header.get("kind") != "raypriv-privacy-ledger":
            raise ArtifactError(f"{path}: not a raypriv privacy ledger")
        counts = {s["name"]: 0 for s in header["stages"]}
        return cls(path, header, counts, first + _add_counts(counts, data[first:]))

    # -- charging -------------------------------------------------------------------------
    def charged(self, stage: str) -> int:
        return self._counts[stage]

    def remaining(self, stage: str) -> int:
        return int(self._plan[stage]["steps"]) - self._counts[stage]

    def charge(self, stage: str) -> int:
        """Record one more step of ``stage`` durably; return its 1-based step number.

        Under an exclusive lock on the file: read what other processes charged since this
        object last looked, refuse past the plan, append, ``fsync``."""
        if stage not in self._plan:
            raise KeyError(f"unknown stage {stage!r}; planned: {sorted(self._plan)}")
        with open(self.path, "rb+") as f:
            fcntl.flock(f, fcntl.LOCK_EX)          # released when the file closes
            f.seek(self._offset)
            tail = f.read()
            self._offset += _add_counts(self._counts, tail)
            if self.remaining(stage) <= 0:
                raise BudgetExhaustedError(
                    f"stage {stage!r} has charged all {self._plan[stage]['steps']} planned steps; the budget "
                    f"(ε = {self.header['epsilon']:g}, δ = {self.header['delta']:g}) is spent")
            step = self._counts[stage] + 1
            torn = bool(tail) and not tail.endswith(b"\n")     # a crash mid-line: start a fresh line
            record = json.dumps({"stage": stage, "step": step, "t": round(time.time(), 3)}).encode()
            f.seek(0, os.SEEK_END)
            f.write((b"\n" if torn else b"") + record + b"\n")
            f.flush()
            os.fsync(f.fileno())
        self._counts[stage] = step
        return step

    # -- privacy spent --------------------------------------------------------------------
    def mechanisms(self):
        """The charged steps as accountant mechanisms (one per stage that charged any)."""
        from raypriv.privacy.accounting import Mechanism

        return [Mechanism(sigma=s["sigma"], sample_rate=s["sample_rate"], steps=self._counts[s["name"]])
                for s in self.header["stages"] if self._counts[s["name"]] > 0]

    def epsilon_spent(self, accountant: str | None = None) -> float:
        from raypriv.privacy.accounting import epsilon

        return epsilon(self.mechanisms(), delta=self.header["delta"],
                       accountant=accountant or self.header["accountant"])

    def summary(self) -> dict[str, Any]:
        """What a manifest records: budget, accountant, σ / q / steps per stage, ε spent."""
        return {"epsilon_target": self.header["epsilon"], "delta": self.header["delta"],
                "accountant": self.header["accountant"], "epsilon_spent": self.epsilon_spent(),
                "stages": [{**s, "steps_charged": self._counts[s["name"]]} for s in self.header["stages"]]}
