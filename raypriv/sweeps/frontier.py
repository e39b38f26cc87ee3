"""The Pareto frontier of a sweep: the trials no other trial beats on both axes (privacy or
protection on one, utility on the other), and a PNG of all trials with the frontier drawn.

An axis is ``"metric:min"`` or ``"metric:max"`` (the direction that is better).

>>> rows = [{"eps": 1, "acc": 0.6}, {"eps": 3, "acc": 0.8}, {"eps": 3, "acc": 0.7}, {"eps": 10, "acc": 0.75}]
>>> [r["acc"] for r in pareto(rows, x=Axis.parse("eps:min"), y=Axis.parse("acc:max"))]
[0.6, 0.8]
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Sequence

from raypriv.errors import ConfigError

__all__ = ["Axis", "pareto", "plot_frontier"]


@dataclasses.dataclass(frozen=True)
class Axis:
    metric: str
    mode: str        # "min" or "max": which way is better

    @classmethod
    def parse(cls, text: str, *, what: str = "frontier") -> "Axis":
        metric, _, mode = str(text).rpartition(":")
        if not metric or mode not in ("min", "max"):
            raise ConfigError(what, f"expected 'metric:min' or 'metric:max', got {text!r}")
        return cls(metric, mode)

    def __str__(self) -> str:
        return f"{self.metric}:{self.mode}"

    def score(self, row: dict[str, Any]) -> float:
        """The value, signed so that larger is better (NaN when missing)."""
        value = row.get(self.metric)
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
            return math.nan
        return float(value) if self.mode == "max" else -float(value)


def pareto(rows: Sequence[dict[str, Any]], *, x: Axis, y: Axis) -> list[dict[str, Any]]:
    """The rows not dominated on (x, y), sorted by x from best to worst along x's
    direction reversed (left to right on a plot); rows missing either metric are left out."""
    scored = [(x.score(r), y.score(r), r) for r in rows]
    scored = [s for s in scored if not (math.isnan(s[0]) or math.isnan(s[1]))]
    front = [r for sx, sy, r in scored
             if not any((ox >= sx and oy >= sy) and (ox > sx or oy > sy) for ox, oy, _ in scored)]
    return sorted(front, key=lambda r: (float(r[x.metric]), float(r[y.metric])))


def plot_frontier(rows: Sequence[dict[str, Any]], front: Sequence[dict[str, Any]], *, x: Axis, y: Axis,
                  path: str, title: str) -> str:
    """All trials as points, the frontier's as a line with markers; saved as ``path`` (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4.2), dpi=120)
    pts = [(r[x.metric], r[y.metric]) for r in rows if not (math.isnan(x.score(r)) or math.isnan(y.score(r)))]
    if pts:
        ax.scatter(*zip(*pts), s=22, color="0.6", label=f"trials ({len(pts)})")
    if front:
        fx, fy = zip(*[(r[x.metric], r[y.metric]) for r in front])
        ax.plot(fx, fy, "-o", color="tab:red", ms=6, label=f"Pareto frontier ({len(front)})")
    ax.set_xlabel(f"{x.metric} ({'lower' if x.mode == 'min' else 'higher'} is better)")
    ax.set_ylabel(f"{y.metric} ({'lower' if y.mode == 'min' else 'higher'} is better)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
