"""Privacy accounting for DP-SGD runs made of several stages.

A run is a list of *mechanisms*: one Poisson-subsampled Gaussian mechanism per stage,
``(noise_multiplier σ, sample_rate q, steps)``. One accountant composes them all (Opacus'
PRV accountant by default, RDP available), so pre-training and fine-tuning spend one budget.

The noise is solved from the target ε before training. With a ``budget_split`` s for a
two-stage plan, stage 1's σ is the one that would spend ``s·ε`` on its own, and stage 2's σ
is then solved so that both stages *together* spend exactly ε (to the accountant's
tolerance, on the conservative side). ε does not add up linearly across stages, so "share
of the budget" means the share stage 1 would spend alone.

>>> from raypriv.privacy.accounting import Mechanism, epsilon
>>> round(epsilon([Mechanism(sigma=1.0, sample_rate=0.01, steps=1000)], delta=1e-5, accountant="rdp"), 2)
2.1
"""
from __future__ import annotations

import dataclasses
import math
from typing import Sequence

from raypriv.errors import ConfigError

ACCOUNTANTS = ("prv", "rdp")
#: Relative precision of the σ search: the composed ε lands in [(1 - tol)·target, target].
EPSILON_RTOL = 0.005
_SIGMA_MAX = 1e4
#: PRV's discretization error: small enough for the 0.5 % search tolerance, no smaller
#: (its run time grows as the mesh gets finer).
PRV_EPS_ERROR = 0.01


@dataclasses.dataclass(frozen=True, kw_only=True)
class Mechanism:
    """``steps`` repetitions of the Poisson-subsampled Gaussian mechanism (σ, q)."""

    sigma: float
    sample_rate: float
    steps: int

    def as_tuple(self) -> tuple[float, float, int]:
        """Opacus accountants' history format."""
        return (float(self.sigma), float(self.sample_rate), int(self.steps))


@dataclasses.dataclass(frozen=True, kw_only=True)
class PrivacyPlan:
    """What a DP job will spend on its private training data, known before it runs: the
    mechanisms it applies to the records of ``source`` (a corpus spec, its ``train`` split), at
    ``delta``, with ``accountant`` for its own ε (:meth:`epsilon`)."""

    mechanisms: tuple[Mechanism, ...]
    delta: float
    accountant: str
    source: str

    def epsilon(self) -> float:
        return epsilon(self.mechanisms, delta=self.delta, accountant=self.accountant)


def check_accountant(name: str) -> str:
    if name not in ACCOUNTANTS:
        raise ConfigError("accountant", f"must be one of {ACCOUNTANTS}, got {name!r}")
    return name


def check_budget(*, epsilon: float, delta: float, dataset_size: int | None = None) -> None:
    """ε > 0 and 0 < δ < 1/N (a δ of 1/N or more allows releasing one record outright)."""
    if not (isinstance(epsilon, (int, float)) and math.isfinite(epsilon) and epsilon > 0):
        raise ConfigError("epsilon", f"must be a finite number > 0, got {epsilon!r}")
    if not (isinstance(delta, (int, float)) and 0 < delta < 1):
        raise ConfigError("delta", f"must be in (0, 1), got {delta!r}")
    if dataset_size is not None and delta >= 1.0 / dataset_size:
        raise ConfigError("delta", f"must be < 1/N = {1.0 / dataset_size:.3g} for N = {dataset_size} "
                                   f"training records, got {delta:g}")


def epsilon(mechanisms: Sequence[Mechanism], *, delta: float, accountant: str = "prv") -> float:
    """ε spent by the composition of ``mechanisms`` at ``delta`` (an upper bound for PRV)."""
    from opacus.accountants import create_accountant

    history = [m.as_tuple() for m in mechanisms if m.steps > 0]
    if not history:
        return 0.0
    acc = create_accountant(mechanism=check_accountant(accountant))
    acc.history = history
    if accountant == "prv":
        return float(acc.get_epsilon(delta=delta, eps_error=PRV_EPS_ERROR))
    return float(acc.get_epsilon(delta=delta))


def _solve(fn, target: float, *, lo: float, hi: float) -> float:
    """Smallest σ (to ``EPSILON_RTOL`` in ε) with ``fn(σ) <= target``, ``fn`` decreasing in σ.

    Starts from the bracket guess ``[lo, hi]``, widens it as needed, then runs false position
    on (log σ, log ε), where ε(σ) is nearly a straight line (Illinois variant, so one end
    cannot stall); a handful of evaluations suffice."""
    f_hi = fn(hi)
    while f_hi > target:
        lo, hi = hi, hi * 2
        if hi > _SIGMA_MAX:
            raise ConfigError("epsilon", f"ε = {target:g} cannot be reached with σ <= {_SIGMA_MAX:g}; "
                                         "raise epsilon or take fewer steps")
        f_hi = fn(hi)
    f_lo = fn(lo)
    while f_lo <= target:                     # the guess was too low: widen downwards
        hi, f_hi, lo = lo, f_lo, lo / 2
        f_lo = fn(lo)
    side = 0
    t = math.log(target)
    while target - f_hi > EPSILON_RTOL * target and hi / lo > 1 + 1e-6:
        a, b = math.log(lo), math.log(hi)
        ga, gb = math.log(f_lo) - t, math.log(f_hi) - t
        mid = math.exp(b - gb * (b - a) / (gb - ga)) if gb != ga else math.sqrt(lo * hi)
        if not lo < mid < hi:
            mid = math.sqrt(lo * hi)
        f_mid = fn(mid)
        if f_mid <= target:
            hi, f_hi = mid, f_mid
            if side == 1:
                f_lo = t_exp(f_lo, t)
            side = 1
        else:
            lo, f_lo = mid, f_mid
            if side == -1:
                f_hi = t_exp(f_hi, t)
            side = -1
    return hi


def t_exp(f: float, t: float) -> float:
    """Illinois step: halve the log-distance of a stale end to the target."""
    return math.exp(t + (math.log(f) - t) / 2)


def solve_sigmas(*, sample_rates: Sequence[float], steps: Sequence[int], epsilon_target: float, delta: float,
                 accountant: str = "prv", budget_split: float | None = None) -> list[float]:
    """Noise multipliers, one per stage, that spend ``epsilon_target`` over the planned steps.

    One stage: the σ whose ε is ``epsilon_target``. Two stages: see the module docstring.
    The search runs RDP first (fast, and an upper bound on ε, so its σ brackets PRV's from
    above), then bisects in log σ with the chosen accountant.
    """
    check_accountant(accountant)
    check_budget(epsilon=epsilon_target, delta=delta)
    if len(sample_rates) != len(steps) or not 1 <= len(steps) <= 2:
        raise ConfigError("stages", "give one or two stages (sample rate and steps each)")
    for q, t in zip(sample_rates, steps):
        if not 0 < q <= 1 or t < 1:
            raise ConfigError("stages", f"each stage needs 0 < sample rate <= 1 and steps >= 1, got q={q}, steps={t}")

    def eps_of(sigmas, acct):
        return epsilon([Mechanism(sigma=s, sample_rate=q, steps=t) for s, q, t in zip(sigmas, sample_rates, steps)],
                       delta=delta, accountant=acct)

    def solve_one(fn_of_sigma, target):
        hi = _solve(lambda s: fn_of_sigma(s, "rdp"), target, lo=0.5, hi=1.0)
        if accountant == "rdp":
            return hi
        # RDP overstates ε, so its σ is an upper bracket for PRV's; PRV's is rarely 20 % lower
        return _solve(lambda s: fn_of_sigma(s, accountant), target, lo=0.8 * hi, hi=hi)

    if len(steps) == 1:
        return [solve_one(lambda s, a: eps_of([s], a), epsilon_target)]
    if budget_split is None or not 0 < budget_split < 1:
        raise ConfigError("budget_split", f"must be in (0, 1) for two stages, got {budget_split!r}")
    first = solve_one(lambda s, a: epsilon([Mechanism(sigma=s, sample_rate=sample_rates[0], steps=steps[0])],
                                           delta=delta, accountant=a), budget_split * epsilon_target)
    second = solve_one(lambda s, a: eps_of([first, s], a), epsilon_target)
    return [first, second]
