"""A dataset's privacy budget across runs: every DP release that touched the dataset, charged
before it runs and composed into one ε.

A run's own ledger (:mod:`raypriv.privacy.ledger`) keeps one training within its plan. A sweep
trains many times on the same records, and each of those trainings is a mechanism on them: the
dataset's budget is a JSON-lines file per dataset, named by the dataset's keyed input
fingerprint, in a budget directory the data owner chooses (a local or shared filesystem: every
charge is ``fsync``-ed under a file lock before the work it pays for starts, which an object
store cannot promise). Each line is a *charge*: an id (charging the same id twice is a no-op, so
a resumed sweep does not pay again for trials it already paid for) and the mechanisms, either

* ``runs``: trainings, each a list of Poisson-subsampled Gaussian stages (σ, q, steps), composed;
* ``private-selection``: "run one of ``candidates`` K times, release the best", K from a
  truncated negative binomial (η, γ) (:func:`raypriv.privacy.selection.private_selection_curve`).
  The drawn K is not written anywhere.

Everything is composed in Rényi DP (:mod:`raypriv.privacy.selection`), the conservative common
ground of the two kinds; :meth:`DatasetBudget.epsilon` is the dataset's ε at its δ. A charge that
would take ε past the budget the ledger was created with is refused before it is written.

>>> import tempfile
>>> from raypriv.privacy.accounting import Mechanism
>>> budget = DatasetBudget.open(tempfile.mkdtemp(), fingerprint="ab12", delta=1e-5, epsilon_budget=8.0)
>>> run = [Mechanism(sigma=1.0, sample_rate=0.01, steps=1000)]
>>> budget.charge("sweep-1/0", runs=[run]), budget.charge("sweep-1/0", runs=[run])   # the second: a no-op
(True, False)
>>> round(budget.epsilon(), 2)
2.1
>>> round(budget.epsilon_with(runs=[run] * 7), 2)         # 8 runs composed
5.93
"""
from __future__ import annotations

import fcntl
import json
import os
import re
import time
from typing import Any, Sequence

from raypriv.errors import ArtifactError, ConfigError
from raypriv.files import write_new
from raypriv.privacy.accounting import Mechanism
from raypriv.privacy.ledger import BudgetExhaustedError
from raypriv.privacy.selection import RdpCurve, TruncatedNegativeBinomial, compose, private_selection_curve

__all__ = ["DatasetBudget", "selection_curve"]

KIND = "raypriv-dataset-budget"


def _mechanisms(stages: Sequence[Mechanism]) -> list[list[float]]:
    return [[m.sigma, m.sample_rate, m.steps] for m in stages]


def _curve_of(entry: dict[str, Any]) -> RdpCurve:
    """The RDP curve a charge line stands for (recomputed from what the line records)."""
    def run_curve(run):
        return RdpCurve.of([Mechanism(sigma=s, sample_rate=q, steps=int(t)) for s, q, t in run])

    if entry["kind"] == "runs":
        return compose([run_curve(r) for r in entry["runs"]])
    if entry["kind"] == "private-selection":
        return selection_curve([run_curve(r) for r in entry["candidates"]],
                               TruncatedNegativeBinomial(entry["eta"], entry["gamma"]))
    raise ArtifactError(f"unknown charge kind {entry['kind']!r}")


def selection_curve(candidates: Sequence[RdpCurve], k: TruncatedNegativeBinomial) -> RdpCurve:
    """Private selection over trials that each run one of ``candidates`` (a choice made without
    looking at the data): the trial's curve is their order-wise maximum."""
    trial = candidates[0]
    for c in candidates[1:]:
        trial = trial.max(c)
    return private_selection_curve(trial, k)


class DatasetBudget:
    """The budget file of one dataset; see the module docstring."""

    def __init__(self, path: str, header: dict[str, Any]):
        self.path = path
        self.header = header
        #: The cap charges are held to: the budget's own, or a smaller one asked for on opening.
        self.cap: float | None = header.get("epsilon_budget")

    @classmethod
    def open(cls, directory: str, *, fingerprint: str, delta: float,
             epsilon_budget: float | None = None) -> "DatasetBudget":
        """The budget of the dataset with keyed fingerprint ``fingerprint`` in ``directory``,
        created (with ``delta`` and the total ``epsilon_budget``, None: no cap) on first use.
        An existing budget keeps the δ and cap it was created with: asking for another δ, or a
        larger cap, is a ConfigError (a budget is not raised by asking again); a smaller cap
        holds for this object's charges."""
        if not re.fullmatch(r"[0-9a-zA-Z_:.-]{1,160}", fingerprint):
            raise ConfigError("fingerprint", f"not a fingerprint: {fingerprint!r}")
        os.makedirs(directory, exist_ok=True)
        path = os.path.join(directory, re.sub(r"[^0-9a-zA-Z_-]", "-", fingerprint) + ".jsonl")
        header = {"kind": KIND, "version": 1, "fingerprint": fingerprint, "delta": float(delta),
                  "epsilon_budget": None if epsilon_budget is None else float(epsilon_budget),
                  "created": round(time.time(), 3)}
        write_new(path, (json.dumps(header) + "\n").encode())       # a no-op if it exists
        budget = cls(path, cls._read(path)[0])
        old = budget.header
        if old["delta"] != float(delta):
            raise ConfigError("delta", f"the budget of this dataset ({path}) is kept at δ = {old['delta']:g}, "
                                       f"got {delta:g}")
        if epsilon_budget is not None and old["epsilon_budget"] is not None and epsilon_budget > old["epsilon_budget"]:
            raise ConfigError("epsilon_budget", f"the dataset's budget was set to ε = {old['epsilon_budget']:g} "
                                                f"when {path} was created; it cannot be raised to {epsilon_budget:g}")
        caps = [c for c in (old["epsilon_budget"], epsilon_budget) if c is not None]
        budget.cap = min(caps) if caps else None
        return budget

    @classmethod
    def _read(cls, path: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        with open(path, "rb") as f:
            return cls._parse(path, f.read())

    @staticmethod
    def _parse(path: str, data: bytes) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        lines = data.split(b"\n")
        try:
            header = json.loads(lines[0])
        except json.JSONDecodeError:
            raise ArtifactError(f"{path}: unreadable budget header") from None
        if not isinstance(header, dict) or header.get("kind") != KIND:
            raise ArtifactError(f"{path}: not a raypriv dataset budget")
        entries = []
        for number, line in enumerate(lines[1:], start=2):
            if not line.strip():
                continue
            try:
                entries.append(json.loads(line))
            except json.JSONDecodeError:
                if number == len(lines):            # a torn last line (no newline): it was never durable
                    continue
                raise ArtifactError(f"{path}: line {number} is not a charge; a budget with a damaged line "
                                    "cannot be trusted to count everything (restore it from a backup)") from None
        return header, entries

    def entries(self) -> list[dict[str, Any]]:
        return self._read(self.path)[1]

    @staticmethod
    def _entry(charge_id: str, *, runs=None, candidates=None, selection: TruncatedNegativeBinomial | None = None,
               note: str = "") -> dict[str, Any]:
        if (runs is None) == (candidates is None):
            raise ValueError("give either runs or candidates (with selection)")
        entry: dict[str, Any] = {"id": charge_id, "t": round(time.time(), 3), "note": note}
        if runs is not None:
            entry.update(kind="runs", runs=[_mechanisms(r) for r in runs])
        else:
            if selection is None:
                raise ValueError("private selection needs the distribution of K")
            entry.update(kind="private-selection", candidates=[_mechanisms(r) for r in candidates],
                         eta=selection.eta, gamma=selection.gamma, mean_trials=selection.mean)
        return entry

    def curve(self, entries: Sequence[dict[str, Any]] | None = None) -> RdpCurve:
        return compose([_curve_of(e) for e in (self.entries() if entries is None else entries)])

    def epsilon(self) -> float:
        """ε the dataset has spent so far (every charge composed) at the budget's δ."""
        return self.curve().epsilon(self.header["delta"])

    def charges_of(self, charge_id: str) -> list[dict[str, Any]]:
        """The charges ``charge_id`` and ``charge_id/…`` (a sweep's own and its re-runs')."""
        return [e for e in self.entries() if e["id"] == charge_id or e["id"].startswith(charge_id + "/")]

    def epsilon_with(self, **charge) -> float:
        """ε the dataset would have spent after one more charge (``runs=`` or
        ``candidates=`` + ``selection=``), without writing it."""
        new = self._entry("planned", **charge)
        return compose([self.curve(), _curve_of(new)]).epsilon(self.header["delta"])

    def charge(self, charge_id: str, **charge) -> bool:
        """Write the charge durably unless ``charge_id`` is already charged; return whether this
        call charged. Refused (BudgetExhaustedError, nothing written) when it would take the
        dataset past its budget."""
        entry = self._entry(charge_id, **charge)
        with open(self.path, "rb+") as f:
            fcntl.flock(f, fcntl.LOCK_EX)               # released when the file closes
            data = f.read()                             # read once, under the lock
            entries = self._parse(self.path, data)[1]
            if any(e.get("id") == charge_id for e in entries):
                return False
            cap = self.cap
            if cap is not None:
                spent = self.curve(entries)
                after = compose([spent, _curve_of(entry)]).epsilon(self.header["delta"])
                if after > cap:
                    raise BudgetExhaustedError(
                        f"charging {charge_id!r} would take the dataset's ε to {after:.3f} at δ = "
                        f"{self.header['delta']:g}, past its budget of {cap:g} ({self.path}; "
                        f"{spent.epsilon(self.header['delta']):.3f} spent so far)")
            if not data.endswith(b"\n"):        # a torn last line was never durable: drop it
                f.truncate(data.rfind(b"\n") + 1)
            f.seek(0, os.SEEK_END)
            f.write(json.dumps(entry).encode() + b"\n")
            f.flush()
            os.fsync(f.fileno())
        return True

    def summary(self) -> dict[str, Any]:
        entries = self.entries()
        return {"path": self.path, "fingerprint": self.header["fingerprint"], "delta": self.header["delta"],
                "epsilon_budget": self.cap, "charges": len(entries),
                "epsilon_spent": self.curve(entries).epsilon(self.header["delta"]), "accountant": "rdp"}
