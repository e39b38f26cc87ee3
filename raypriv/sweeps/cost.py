"""What a sweep costs in privacy, worked out and charged before any trial runs.

Every trial of a DP job trains on the same private records. With ``selection: all`` the sweep
reports every trial, so its cost is all trials composed; with ``selection: private`` it runs a
secret, random number of trials and releases only the best (Papernot & Steinke), a cost a
small multiple of one trial's. Either is charged to the dataset's budget
(:class:`raypriv.privacy.budget.DatasetBudget`, keyed by the training data's keyed fingerprint)
before the first trial starts; a sweep the budget cannot pay for is refused with nothing run.
Tuning on public data costs nothing and says so; a job that makes no DP claim (unlearnable
examples, BN synthesis, MTK) has no ε to charge, and the sweep says that instead.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Sequence

from raypriv.errors import ConfigError

__all__ = ["SweepCost", "charge_reruns", "charge_sweep", "plan_cost"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class SweepCost:
    """The privacy of a sweep as its manifest records it."""

    kind: str                      # "composed", "private-selection", "public" or "no-dp-claim"
    note: str
    delta: float | None = None
    trial_epsilon: tuple[float, ...] = ()       # each trial's own ε (its job's accountant)
    sweep_epsilon: float | None = None          # the whole sweep (RDP), what the data pays
    reruns: int = 0                             # trainings charged again on resumes (attempts.py)
    rerun_epsilon: float | None = None          # private selection: the sweep's charges, re-runs included
    selection: dict[str, Any] | None = None     # η, γ, E[K] of private selection
    dataset: dict[str, Any] | None = None       # the dataset budget after charging

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _plans(jobs: Sequence[Any]):
    plans = [job.planned_privacy() for job in jobs]
    private = [p for p in plans if p is not None]
    if private and len(private) != len(plans):
        raise ConfigError("space", "some trials are private and some are not: sweep one kind at a time")
    deltas = {p.delta for p in private}
    if len(deltas) > 1:
        raise ConfigError("space", f"trials use different δ ({sorted(deltas)}): one sweep is accounted at one δ")
    return private


def plan_cost(jobs: Sequence[Any], *, candidates: Sequence[Any] = (), selection: str, mean_trials: float,
              eta: float, data: str) -> tuple[SweepCost, list, Any]:
    """The sweep's cost before charging: ``(cost, plans, distribution of K or None)``.
    ``jobs`` are the trials (for ``selection: all``) and ``candidates`` every job a
    privately selected trial could be."""
    from raypriv.privacy.selection import RdpCurve, TruncatedNegativeBinomial, compose

    private = selection == "private"
    plans = _plans(candidates if private else jobs)
    if not plans:
        return SweepCost(kind="no-dp-claim", note="the tuned job makes no differential-privacy claim, so the sweep "
                                                  "has no ε to charge; its outputs protect (or not) as the "
                                                  "technique's own report says"), [], None
    delta = plans[0].delta
    trial_epsilon = tuple(p.epsilon() for p in plans)          # each its own accountant's (PRV: not free)
    if data == "public":
        return SweepCost(kind="public", delta=delta, trial_epsilon=trial_epsilon,
                         note="tuned on data declared public: the trials' DP training is not charged, and the "
                              "selection costs nothing"), plans, None
    curves = [RdpCurve.of(p.mechanisms) for p in plans]
    if private:
        from raypriv.privacy.budget import selection_curve

        k = TruncatedNegativeBinomial.with_mean(mean_trials, eta=eta)
        eps = selection_curve(curves, k).epsilon(delta)
        return SweepCost(kind="private-selection", delta=delta, trial_epsilon=trial_epsilon,
                         sweep_epsilon=eps, selection={"eta": k.eta, "gamma": k.gamma, "mean_trials": k.mean},
                         note="private selection (Papernot & Steinke 2022, Theorem 2): a secret number K of "
                              "random trials, only the best released; ε covers that release (trial_epsilon lists "
                              "every candidate setting's own ε)"), plans, k
    eps = compose(curves).epsilon(delta)
    return SweepCost(kind="composed", delta=delta, trial_epsilon=trial_epsilon,
                     sweep_epsilon=eps, note="every trial is reported, so the sweep spends all trials composed "
                                             "(RDP); releasing any of them is covered"), plans, None


def _charged(cost: SweepCost, budget, sweep_id: str) -> SweepCost:
    """``cost`` with what the ledger holds for the sweep (its own charge and every re-run charged
    on a resume, composed) and the dataset's total. With private selection the re-runs tell how
    many trials ran, so ``sweep_epsilon`` (what the winner's release states) stays the selection's
    and the total with re-runs goes to ``rerun_epsilon``, for the data owner."""
    mine = budget.charges_of(sweep_id)
    reruns = sum(len(e["runs"]) for e in mine if e["id"] != sweep_id)
    total = budget.curve(mine).epsilon(cost.delta)
    if cost.kind == "private-selection":
        return dataclasses.replace(cost, reruns=reruns, rerun_epsilon=total if reruns else None,
                                   dataset=budget.summary())
    return dataclasses.replace(cost, sweep_epsilon=total, reruns=reruns, dataset=budget.summary())


def _open_budget(cost: SweepCost, budget_dir: str | None, epsilon_budget: float | None, fingerprint: str):
    from raypriv.privacy.budget import DatasetBudget

    if budget_dir is None:
        raise ConfigError("budget", "a sweep of a DP job on private data charges the dataset's budget: name a "
                                    "budget directory (budget=DIR; or declare data=public)")
    return DatasetBudget.open(budget_dir, fingerprint=fingerprint, delta=cost.delta, epsilon_budget=epsilon_budget)


def charge_sweep(cost: SweepCost, plans: list, k, *, sweep_id: str, budget_dir: str | None,
                 epsilon_budget: float | None, fingerprint: str) -> SweepCost:
    """Charge the sweep to the dataset's budget, one line for all its trials (a no-op when
    ``sweep_id`` is charged already: a resumed sweep pays once); refused, with nothing charged,
    past the budget."""
    from raypriv.privacy.ledger import BudgetExhaustedError

    if cost.kind not in ("composed", "private-selection"):
        return cost
    budget = _open_budget(cost, budget_dir, epsilon_budget, fingerprint)
    runs = [list(p.mechanisms) for p in plans]
    charge = {"runs": runs} if k is None else {"candidates": runs, "selection": k}
    try:           # one line for the whole sweep, under the ledger's lock: all of it is charged or none
        note = f"{len(runs)} trials, composed" if k is None else f"private selection over {len(runs)} settings"
        budget.charge(sweep_id, note=note, **charge)
    except BudgetExhaustedError as e:
        raise BudgetExhaustedError(f"{e}; the sweep was not run") from None
    return _charged(cost, budget, sweep_id)


def charge_reruns(cost: SweepCost, plans: list, *, sweep_id: str, budget_dir: str | None,
                  epsilon_budget: float | None, fingerprint: str) -> SweepCost:
    """Charge trainings a resume runs again (``plans``: their jobs' plans), one line composed,
    before any of them starts; refused, with nothing charged and nothing run, past the budget.
    Each resume that runs a trial again charges it again (fresh noise, a new training)."""
    import secrets

    from raypriv.privacy.ledger import BudgetExhaustedError

    budget = _open_budget(cost, budget_dir, epsilon_budget, fingerprint)
    try:
        budget.charge(f"{sweep_id}/rerun-{secrets.token_hex(4)}", runs=[list(p.mechanisms) for p in plans],
                      note=f"{len(plans)} trial(s) of {sweep_id} run again")
    except BudgetExhaustedError as e:
        raise BudgetExhaustedError(f"{e}; the sweep was not resumed") from None
    return _charged(cost, budget, sweep_id)
