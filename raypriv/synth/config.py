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

from raypriv.classifier.config import DistillConfig, VictimConfig
from raypriv.configs import build, setting
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

    images_per_class: int = setting(100, help="images generated per class")
    batch_size: int = setting(50, help="images optimized together (one task)")
    iterations: int = setting(300, help="optimizer steps per batch")
    statistics: str = setting("classwise", choices=STATISTICS, help="match each class's BN statistics or the teacher's running ones")
    lr: float = setting(0.1, help="Adam learning rate on the pixels")
    warmup_fraction: float = setting(0.05, help="share of the iterations with a linear warm-up")
    bn: float = setting(1.0, help="weight of the BN-statistics loss")
    first_bn_weight: float = setting(10.0, help="weight of the first BN layer within it")
    ce: float = setting(1.0, help="weight of the cross-entropy toward the target class")
    tv_l1: float = setting(0.0, help="weight of the L1 total variation")
    tv_l2: float = setting(0.03, help="weight of the L2 total variation")
    l2: float = setting(1e-5, help="weight of the images' L2 norm")
    jitter: int = setting(2, help="random roll by up to this many pixels before every step")
    flip: bool | None = setting(None, help="random horizontal flips (default: for 3-channel images only)")
    init_std: float = setting(0.2, help="standard deviation of the initial noise around mid-grey")
    seed: int = setting(0, help="fixes every task's initial noise and jitter")
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
        return build(cls, d)


LABELS = ("hard", "teacher")


@dataclasses.dataclass(frozen=True, kw_only=True)
class SynthEvalConfig:
    """How ``raypriv synth evaluate`` judges a synthetic set (:mod:`raypriv.synth.report`).

    ``images_per_class``: synthetic subset sizes to train on (each ≤ what was generated).
    ``nearest_max``: at most this many synthetic images get a nearest-real search (spread over
    classes); ``grid``: how many pairs ``nearest.png`` shows; ``mia``: run the attack.
    ``equal_steps``: a synthetic subset smaller than the real training set is repeated (and
    shuffled) up to its size, so that its model takes as many optimizer steps as the
    real-set model under the same recipe and is not also under-trained."""

    victim: VictimConfig = setting(default_factory=VictimConfig, flatten=True, rename={"model": "victim"},
                                   help="the classifier recipe trained on synthetic and on real data")
    images_per_class: tuple[int, ...] = setting((10, 50), help="synthetic subset sizes to train on")
    equal_steps: bool = setting(True, help="repeat a small subset up to the real set's size (equal optimizer steps)")
    nearest_max: int = setting(1000, help="synthetic images searched for their nearest real image")
    grid: int = setting(10, help="pairs nearest.png shows")
    mia: bool = setting(True, help="run the membership-inference attack")
    labels: str = setting("hard", choices=LABELS,
                          help="train on the class labels, or distil the teacher's soft labels (needs --teacher)")
    distill: DistillConfig = setting(default_factory=DistillConfig, help="distillation settings (with --labels teacher)")

    def __post_init__(self):
        if self.labels not in LABELS:
            raise ConfigError("labels", f"must be one of {LABELS}, got {self.labels!r}")
        object.__setattr__(self, "images_per_class", tuple(int(k) for k in self.images_per_class))
        if not self.images_per_class or min(self.images_per_class) < 1:
            raise ConfigError("images_per_class", f"must be positive integers, got {self.images_per_class}")
        if self.nearest_max < 1 or self.grid < 0:
            raise ConfigError("nearest_max", "nearest_max must be >= 1 and grid >= 0")
