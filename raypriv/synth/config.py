"""Settings of synthetic-image generation from BatchNorm statistics.

The loss follows DeepInversion (Yin et al., CVPR 2020) with class-wise targets
(Soufleri et al., 2022): for a batch of class ``c``,

    loss = bn · Σ_l w_l (‖μ_l(x) − μ_l,c‖₂ + ‖σ²_l(x) − σ²_l,c‖₂)
         + ce · CE(teacher(x), c) + tv_l1 · TV₁(x) + tv_l2 · TV₂(x) + l2 · ‖x‖₂

with ``w_0 = first_bn_weight`` and ``w_l = 1`` otherwise; images live on the [0, 1] pixel
scale the teachers are trained on, start as Gaussian noise around mid-grey, are jittered
(random roll by up to ``jitter`` pixels) and flipped before every step, optimized with Adam
under a cosine schedule with linear warm-up, clipped to [0, 1] after every step, and the
lowest-loss iterate of each batch is kept.

>>> from raypriv.synth.config import SynthConfig
>>> SynthConfig(images_per_class=20, batch_size=10).tasks_per_class
2
>>> SynthConfig(statistics="median")
Traceback (most recent call last):
...
raypriv.errors.ConfigError: invalid statistics: must be one of ('classwise', 'global'), got 'median'
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any

from raypriv.errors import ConfigError

STATISTICS = ("classwise", "global")


@dataclasses.dataclass(frozen=True, kw_only=True)
class SynthConfig:
    """What to generate and how.

    ``images_per_class`` images of every class, optimized ``batch_size`` at a time (one
    generation task = one batch of one class; the last batch of a class may be smaller).
    ``statistics``: ``classwise`` matches each class's own BN statistics (the paper);
    ``global`` matches the teacher's running statistics (DeepInversion), for comparison.
    ``flip``: ``None`` means random horizontal flips for 3-channel images only.
    ``seed`` fixes every task's initial noise and jitter: the same seed gives the same images
    on the same kind of device and CPU thread count per worker, however many workers run.
    """

    images_per_class: int = 100
    batch_size: int = 50
    iterations: int = 300
    statistics: str = "classwise"
    lr: float = 0.1
    warmup_fraction: float = 0.05
    bn: float = 1.0
    first_bn_weight: float = 10.0
    ce: float = 1.0
    tv_l1: float = 0.0
    tv_l2: float = 0.03
    l2: float = 1e-5
    jitter: int = 2
    flip: bool | None = None
    init_std: float = 0.2
    seed: int = 0
    # Defaults come from one-factor sweeps on mnist5k (README, "Synthetic data: what we
    # measured"): lr 0.03/0.1/0.3, tv_l2 1e-4…1, jitter 0/2/4, first-BN weight 1/10/30,
    # 200/300/600 iterations; tv_l2 and lr mattered most, more iterations little.

    def __post_init__(self):
        for name in ("images_per_class", "batch_size", "iterations"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ConfigError(name, f"must be an integer >= 1, got {v!r}")
        if self.statistics not in STATISTICS:
            raise ConfigError("statistics", f"must be one of {STATISTICS}, got {self.statistics!r}")
        if not self.lr > 0:
            raise ConfigError("lr", f"must be > 0, got {self.lr}")
        if not 0 <= self.warmup_fraction < 1:
            raise ConfigError("warmup_fraction", f"must be in [0, 1), got {self.warmup_fraction}")
        for name in ("bn", "first_bn_weight", "ce", "tv_l1", "tv_l2", "l2", "init_std"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
                raise ConfigError(name, f"must be a finite number >= 0, got {v!r}")
        if not isinstance(self.jitter, int) or self.jitter < 0:
            raise ConfigError("jitter", f"must be an integer >= 0, got {self.jitter!r}")
        if self.flip not in (None, True, False):
            raise ConfigError("flip", f"must be true, false or null, got {self.flip!r}")
        if not isinstance(self.seed, int) or self.seed < 0:
            raise ConfigError("seed", f"must be an integer >= 0, got {self.seed!r}")

    @property
    def tasks_per_class(self) -> int:
        return -(-self.images_per_class // self.batch_size)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "SynthConfig":
        from raypriv.configs import reject_unknown

        reject_unknown(cls, d, what="generation setting")
        return cls(**d)
