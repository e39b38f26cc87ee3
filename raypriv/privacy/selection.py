"""The privacy of tuning: Rényi-DP curves, their composition, and private selection with a random
number of trials (Papernot & Steinke, "Hyperparameter Tuning with Renyi Differential Privacy",
ICLR 2022).

Every trial of a sweep on private data is a DP mechanism on the same records. Releasing the
best of ``N`` trials costs the composition of all ``N`` (:func:`compose`: the RDP curves add
order by order). Private selection instead runs the trial mechanism ``K`` times, ``K`` drawn
from a truncated negative binomial distribution :class:`TruncatedNegativeBinomial` (secretly:
the draw is never recorded in what is released) and releases only the best; its cost
(:func:`private_selection_curve`, their Theorem 2) is a small multiple of one trial's
whatever ``E[K]``, where composition grows with ``N``.

An RDP curve is a :class:`RdpCurve`: ε(λ) at the orders :data:`ORDERS`; :meth:`RdpCurve.epsilon`
converts it to (ε, δ)-DP with the conversion Opacus and dp-accounting use
(ε = ε(λ) + log((λ-1)/λ) - (log δ + log λ)/(λ-1), minimized over λ).

>>> one = RdpCurve.of([Mechanism(sigma=1.0, sample_rate=0.01, steps=1000)])
>>> round(one.epsilon(1e-5), 2)
2.1
>>> round(compose([one] * 8).epsilon(1e-5), 2)          # the best of 8 trials, all composed
5.93
>>> k = TruncatedNegativeBinomial.with_mean(8, eta=1)   # geometric: E[K] = 8
>>> round(private_selection_curve(one, k).epsilon(1e-5), 2)
3.97
"""
from __future__ import annotations

import dataclasses
import math
import secrets
from typing import Sequence

from raypriv.errors import ConfigError
from raypriv.privacy.accounting import Mechanism

__all__ = ["ORDERS", "RdpCurve", "TruncatedNegativeBinomial", "compose", "private_selection_curve"]

#: The Rényi orders curves are kept at: Opacus' default grid, extended upward (private
#: selection's ``log E[K] / (λ - 1)`` term favours large orders).
ORDERS: tuple[float, ...] = tuple([1 + x / 10.0 for x in range(1, 100)] + list(range(12, 64))
                                  + [80, 96, 128, 160, 192, 256])


@dataclasses.dataclass(frozen=True)
class RdpCurve:
    """ε(λ) at :data:`ORDERS` (``inf`` where a mechanism gives no bound)."""

    values: tuple[float, ...]

    @classmethod
    def of(cls, mechanisms: Sequence[Mechanism]) -> "RdpCurve":
        """The composed RDP curve of Poisson-subsampled Gaussian mechanisms (Opacus' analysis)."""
        from opacus.accountants.analysis.rdp import compute_rdp

        total = [0.0] * len(ORDERS)
        for m in mechanisms:
            if m.steps > 0:
                rdp = compute_rdp(q=m.sample_rate, noise_multiplier=m.sigma, steps=m.steps, orders=list(ORDERS))
                total = [t + float(r) for t, r in zip(total, rdp)]
        return cls(tuple(total))

    @classmethod
    def zero(cls) -> "RdpCurve":
        return cls((0.0,) * len(ORDERS))

    def epsilon(self, delta: float) -> float:
        """The smallest ε of the (ε, δ)-DP guarantees the curve implies."""
        if not 0 < delta < 1:
            raise ConfigError("delta", f"must be in (0, 1), got {delta!r}")
        best = math.inf
        for order, value in zip(ORDERS, self.values):
            eps = value + math.log((order - 1) / order) - (math.log(delta) + math.log(order)) / (order - 1)
            best = min(best, eps)
        return max(best, 0.0)

    def max(self, other: "RdpCurve") -> "RdpCurve":
        """Order-wise maximum: a bound for a mechanism that runs one of the two, chosen
        independently of the data (Rényi divergence is jointly quasi-convex)."""
        return RdpCurve(tuple(max(a, b) for a, b in zip(self.values, other.values)))


def compose(curves: Sequence[RdpCurve]) -> RdpCurve:
    """The curve of running every mechanism in ``curves`` on the same data (RDP adds up)."""
    total = RdpCurve.zero().values
    for c in curves:
        total = tuple(a + b for a, b in zip(total, c.values))
    return RdpCurve(total)


@dataclasses.dataclass(frozen=True)
class TruncatedNegativeBinomial:
    """The number of trials ``K`` of private selection: ``P[K = k] ∝ (1-γ)^k · C(k+η-1, k)``
    for ``k ≥ 1`` (η = 1: geometric, η = 0: logarithmic). ``η`` trades a smaller cost
    (η near -1 ... 0) against a heavier tail in ``K``; Papernot & Steinke recommend η ∈ [0, 1]."""

    eta: float
    gamma: float

    def __post_init__(self):
        if not (self.eta > -1 and math.isfinite(self.eta)):
            raise ConfigError("eta", f"must be a number > -1, got {self.eta!r}")
        if not 0 < self.gamma < 1:
            raise ConfigError("gamma", f"must be in (0, 1), got {self.gamma!r}")

    @property
    def mean(self) -> float:
        g, eta = self.gamma, self.eta
        if eta == 0:
            return (1 / g - 1) / math.log(1 / g)
        return eta * (1 - g) / (g * (1 - g ** eta))

    @classmethod
    def with_mean(cls, mean: float, *, eta: float = 1.0) -> "TruncatedNegativeBinomial":
        """The distribution with ``E[K] = mean`` (> 1) for this η (γ solved by bisection)."""
        if not (isinstance(mean, (int, float)) and mean > 1 and math.isfinite(mean)):
            raise ConfigError("mean_trials", f"must be a number > 1, got {mean!r}")
        lo, hi = 1e-12, 1 - 1e-12                    # the mean falls as γ grows
        for _ in range(200):
            mid = (lo + hi) / 2
            if cls(eta, mid).mean > mean:
                lo = mid
            else:
                hi = mid
        return cls(eta, (lo + hi) / 2)

    def pmf(self, k: int) -> float:
        g, eta = self.gamma, self.eta
        p = (1 - g) / math.log(1 / g) if eta == 0 else (1 - g) * eta / (g ** -eta - 1)
        for j in range(1, k):
            p *= (1 - g) * (j + eta) / (j + 1)
        return p

    def draw(self) -> int:
        """A secret draw of ``K`` (the operating system's CSPRNG): whoever sees only the
        released winner must not learn ``K``; do not log or record it in a release."""
        u = secrets.SystemRandom().random()
        g, eta = self.gamma, self.eta
        k, p = 1, self.pmf(1)
        cdf = p
        while cdf < u and p > 0:
            p *= (1 - g) * (k + eta) / (k + 1)
            k += 1
            cdf += p
        return k


def private_selection_curve(trial: RdpCurve, k: TruncatedNegativeBinomial) -> RdpCurve:
    """RDP of "run the trial mechanism ``K`` times, release the best" (Papernot & Steinke,
    Theorem 2): at each order λ,
    ``ε'(λ) = ε(λ) + (1+η)(1 - 1/λ̂) ε(λ̂) + (1+η) log(1/γ) / λ̂ + log E[K] / (λ - 1)``,
    minimized over the order λ̂ ≥ 1 (here over :data:`ORDERS`)."""
    eta, g = k.eta, k.gamma
    extra = min((1 + eta) * (1 - 1 / lh) * e_hat + (1 + eta) * math.log(1 / g) / lh
                for lh, e_hat in zip(ORDERS, trial.values))
    log_mean = math.log(k.mean)
    return RdpCurve(tuple(e + extra + log_mean / (lam - 1) for lam, e in zip(ORDERS, trial.values)))
