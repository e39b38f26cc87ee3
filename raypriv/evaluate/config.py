"""Settings of a protection evaluation: the victim's training recipe and what to compare.

A victim is trained *from scratch* with the same recipe on the clean and on the protected
training set; the recipe defaults follow the unlearnable-examples paper's CIFAR victim
(SGD, lr 0.1, momentum 0.9, weight decay 5e-4, batch 128, crop + flip augmentation),
shortened to 20 epochs of a small CNN so it runs on a CPU.

>>> from raypriv.evaluate.config import EvaluateConfig, VictimConfig
>>> cfg = EvaluateConfig(victim=VictimConfig(epochs=5))
>>> cfg.defenses
('none', 'grayscale', 'jpeg:75', 'noaug')
>>> VictimConfig(lr=0)
Traceback (most recent call last):
...
raypriv.errors.ConfigError: invalid lr: must be > 0, got 0
"""
from __future__ import annotations

import dataclasses
from typing import Any

from raypriv.errors import ConfigError

SCHEDULES = ("cosine", "step", "constant")
OPTIMIZERS = ("sgd", "adam")


@dataclasses.dataclass(frozen=True, kw_only=True)
class VictimConfig:
    """The victim's training recipe.

    ``batch_size`` is the *global* batch: each of the N Ray Train workers takes
    ``batch_size // N`` rows per step, so the recipe does not change with the worker count.
    ``schedule``: ``cosine`` anneals to 0 over ``epochs``; ``step`` multiplies the rate by
    0.1 at 50 % and 75 % of the epochs; ``constant`` keeps it.
    ``hflip``: random horizontal flips during augmentation; ``None`` means on for
    3-channel (natural) images and off for 1-channel ones (digits are not flip-invariant).
    ``seed`` seeds model initialisation, shuffling and augmentation on every worker.
    ``optimizer``: ``sgd`` (with ``momentum``/``nesterov``) or ``adam`` (ignores both).
    """

    model: str = "small_cnn"
    epochs: int = 20
    batch_size: int = 128
    optimizer: str = "sgd"
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    schedule: str = "cosine"
    augment: bool = True
    hflip: bool | None = None
    eval_batch_size: int = 512
    seed: int = 0

    def __post_init__(self):
        if not isinstance(self.model, str) or not self.model:
            raise ConfigError("model", f"must be a model name, got {self.model!r}")
        for name in ("epochs", "batch_size", "eval_batch_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(name, f"must be an integer >= 1, got {value!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError("optimizer", f"must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if not self.lr > 0:
            raise ConfigError("lr", f"must be > 0, got {self.lr}")
        if not 0 <= self.momentum < 1:
            raise ConfigError("momentum", f"must be in [0, 1), got {self.momentum}")
        if self.optimizer == "sgd" and self.nesterov and self.momentum == 0:
            raise ConfigError("nesterov", "needs momentum > 0")
        if self.weight_decay < 0:
            raise ConfigError("weight_decay", f"must be >= 0, got {self.weight_decay}")
        if self.schedule not in SCHEDULES:
            raise ConfigError("schedule", f"must be one of {SCHEDULES}, got {self.schedule!r}")
        if self.hflip not in (None, True, False):
            raise ConfigError("hflip", f"must be true, false or null, got {self.hflip!r}")
        if not isinstance(self.seed, int) or self.seed < 0:
            raise ConfigError("seed", f"must be an integer >= 0, got {self.seed!r}")

    def flip_for(self, channels: int) -> bool:
        """Whether augmentation flips images with ``channels`` channels."""
        return self.hflip if self.hflip is not None else channels == 3


@dataclasses.dataclass(frozen=True, kw_only=True)
class DistillConfig:
    """Train a victim from a teacher's soft labels instead of the dataset's hard labels
    (knowledge distillation, as DeepInversion's data-free transfer does): the loss is
    ``T²·KL(softmax(teacher(x)/T) ‖ softmax(student(x)/T))`` on each augmented batch, after
    mixing image pairs with weights drawn from Beta(``mixup_alpha``, ``mixup_alpha``)
    (0 turns mixing off). The teacher labels every batch afresh, so it must ship with the data."""

    temperature: float = 4.0
    mixup_alpha: float = 1.0

    def __post_init__(self):
        if not self.temperature > 0:
            raise ConfigError("temperature", f"must be > 0, got {self.temperature}")
        if not self.mixup_alpha >= 0:
            raise ConfigError("mixup_alpha", f"must be >= 0, got {self.mixup_alpha}")


@dataclasses.dataclass(frozen=True, kw_only=True)
class EvaluateConfig:
    """What :func:`raypriv.evaluate.report.evaluate_protection` compares.

    The victim is trained once on the clean set (defense ``none``), once on the fully
    protected set per entry of ``defenses``, and once per ``(fraction, defense)`` of
    ``partial`` × ``partial_defenses`` on a mix where only ``fraction`` of the images are
    protected (the paper's partial-protection experiment: protection of a subset only
    helps if the victim's accuracy does not recover from the clean rest).
    """

    victim: VictimConfig = dataclasses.field(default_factory=VictimConfig)
    defenses: tuple[str, ...] = ("none", "grayscale", "jpeg:75", "noaug")
    partial: tuple[float, ...] = ()
    partial_defenses: tuple[str, ...] = ("none",)

    def __post_init__(self):
        from raypriv.evaluate.defenses import parse_defense

        if not isinstance(self.victim, VictimConfig):
            raise ConfigError("victim", f"must be a VictimConfig, got {type(self.victim).__name__}")
        object.__setattr__(self, "defenses", tuple(self.defenses))
        object.__setattr__(self, "partial", tuple(float(f) for f in self.partial))
        object.__setattr__(self, "partial_defenses", tuple(self.partial_defenses))
        for field in ("defenses", "partial_defenses"):
            specs = getattr(self, field)
            if len(set(specs)) != len(specs):
                raise ConfigError(field, f"has duplicates: {list(specs)}")
            for spec in specs:
                parse_defense(spec, field=field)
        if self.partial and not self.partial_defenses:
            raise ConfigError("partial_defenses", "must name at least one defense when partial is set")
        for f in self.partial:
            if not 0 < f < 1:
                raise ConfigError("partial", f"fractions must be in (0, 1), got {f}")
        if len(set(self.partial)) != len(self.partial):
            raise ConfigError("partial", f"has duplicates: {list(self.partial)}")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready mapping (tuples become lists)."""
        d = dataclasses.asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "EvaluateConfig":
        """Build from a plain mapping (YAML/CLI); unknown keys are errors."""
        d = dict(d)
        victim = d.pop("victim", {}) or {}
        known = {f.name for f in dataclasses.fields(cls)} - {"victim"}
        vknown = {f.name for f in dataclasses.fields(VictimConfig)}
        for key in d:
            if key not in known:
                raise ConfigError(key, f"unknown evaluation setting; known: {sorted(known | {'victim'})}")
        for key in victim:
            if key not in vknown:
                raise ConfigError(f"victim.{key}", f"unknown victim setting; known: {sorted(vknown)}")
        return cls(victim=VictimConfig(**victim), **{k: tuple(v) for k, v in d.items()})
