"""A sweep's search space: dotted job settings, each a grid, a choice or a range, expanded into
the concrete trial settings before anything runs (so every trial's privacy cost is known and
charged up front, and a resumed sweep runs the same trials).

A space is a mapping ``{"train.epsilon": {"grid": [1, 3, 10]}, "train.lr": {"loguniform": [1e-4,
1e-2]}}``. ``grid`` values are all tried (their product across keys); ``choice``, ``uniform``,
``loguniform`` and ``randint`` are drawn for each of ``samples`` repetitions of the grid.

>>> space = parse_space({"train.epsilon": {"grid": [1, 3]}, "train.width": {"choice": [8, 16]}})
>>> trials = expand(space, samples=2, seed=0)
>>> len(trials), sorted({t["train.epsilon"] for t in trials})
(4, [1, 3])
>>> len(candidates(space))                 # every setting a trial could get
4
>>> apply_settings({"train": {"epsilon": 4, "lr": 0.1}}, {"train.epsilon": 1})
{'train': {'epsilon': 1, 'lr': 0.1}}
"""
from __future__ import annotations

import dataclasses
import itertools
import math
import random
from typing import Any, Mapping

from raypriv.errors import ConfigError

__all__ = ["KINDS", "Dimension", "apply_settings", "candidates", "expand", "parse_space"]

#: How a dimension is given: a list of values (``grid``, ``choice``) or a range ``[low, high]``.
KINDS = ("grid", "choice", "uniform", "loguniform", "randint")


@dataclasses.dataclass(frozen=True)
class Dimension:
    key: str
    kind: str
    values: tuple

    @property
    def finite(self) -> bool:
        return self.kind in ("grid", "choice", "randint")

    def all_values(self) -> tuple:
        if self.kind == "randint":
            return tuple(range(int(self.values[0]), int(self.values[1])))
        if not self.finite:
            raise ConfigError(f"space.{self.key}", f"a {self.kind} range has no finite list of values")
        return self.values

    def draw(self, rng: random.Random) -> Any:
        lo, hi = (self.values + (None, None))[:2]
        if self.kind == "choice":
            return rng.choice(self.values)
        if self.kind == "uniform":
            return rng.uniform(lo, hi)
        if self.kind == "loguniform":
            return math.exp(rng.uniform(math.log(lo), math.log(hi)))
        if self.kind == "randint":
            return rng.randrange(int(lo), int(hi))
        raise AssertionError(self.kind)


def _dimension(key: str, spec: Any) -> Dimension:
    where = f"space.{key}"
    if not isinstance(spec, Mapping) or len(spec) != 1:
        raise ConfigError(where, f"expected one of {{{', '.join(k + ': ...' for k in KINDS)}}}, got {spec!r}")
    (kind, values), = spec.items()
    if kind not in KINDS:
        raise ConfigError(where, f"unknown kind {kind!r}; known: {list(KINDS)}")
    if not isinstance(values, (list, tuple)) or not values:
        raise ConfigError(where, f"{kind} needs a non-empty list, got {values!r}")
    if kind in ("uniform", "loguniform", "randint"):
        if len(values) != 2 or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values) \
                or not values[0] < values[1]:
            raise ConfigError(where, f"{kind} needs [low, high] with low < high, got {list(values)!r}")
        if kind == "loguniform" and values[0] <= 0:
            raise ConfigError(where, f"loguniform needs low > 0, got {values[0]!r}")
    return Dimension(key=key, kind=kind, values=tuple(values))


def parse_space(space: Mapping[str, Any]) -> tuple[Dimension, ...]:
    """The dimensions of a space mapping (ConfigError naming the bad key otherwise); an empty
    space repeats the base settings (``samples`` times: seeds, say, varied through the space)."""
    if not isinstance(space, Mapping):
        raise ConfigError("space", f"expected a mapping of dotted settings, got {space!r}")
    return tuple(_dimension(str(k), v) for k, v in space.items())


def expand(space: tuple[Dimension, ...], *, samples: int = 1, seed: int = 0) -> list[dict[str, Any]]:
    """The trials' settings: each point of the grid, ``samples`` times, with the other
    dimensions drawn (reproducibly from ``seed``)."""
    if samples < 1:
        raise ConfigError("samples", f"must be >= 1, got {samples}")
    rng = random.Random(seed)
    grid = [d for d in space if d.kind == "grid"]
    drawn = [d for d in space if d.kind != "grid"]
    trials = []
    for _ in range(samples):
        for point in itertools.product(*(d.values for d in grid)):
            trial = dict(zip((d.key for d in grid), point))
            trial.update({d.key: d.draw(rng) for d in drawn})
            trials.append({d.key: trial[d.key] for d in space})       # the space's key order
    return trials


def draw(space: tuple[Dimension, ...], rng: random.Random) -> dict[str, Any]:
    """One trial's settings drawn at random (grids too): private selection's trials."""
    return {d.key: rng.choice(d.all_values()) if d.kind == "grid" else d.draw(rng) for d in space}


def candidates(space: tuple[Dimension, ...]) -> list[dict[str, Any]]:
    """Every setting a trial could get: the product of all values (a finite space only)."""
    return [dict(zip((d.key for d in space), point)) for point in itertools.product(*(d.all_values() for d in space))]


def apply_settings(base: Mapping[str, Any], settings: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with the trial's dotted ``settings`` laid over it (the same merge as ``--set``)."""
    from raypriv.jobs.entry import merge_dotted

    return merge_dotted(base, settings)
