"""Settings of a protection evaluation: the victim's training recipe and what to compare.

A victim is trained *from scratch* with the same recipe on the clean and on the protected
training set; the recipe defaults follow the unlearnable-examples paper's CIFAR victim
(SGD, lr 0.1, momentum 0.9, weight decay 5e-4, batch 128, crop + flip augmentation),
shortened to 20 epochs of a small CNN so it runs on a CPU.

>>> from raypriv.classifier import VictimConfig
>>> from raypriv.evaluate.config import EvaluateConfig
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

from raypriv.classifier.config import VictimConfig
from raypriv.configs import build, setting
from raypriv.errors import ConfigError

@dataclasses.dataclass(frozen=True, kw_only=True)
class EvaluateConfig:
    """What :func:`raypriv.evaluate.report.evaluate_protection` compares.

    The victim is trained once on the clean set (defense ``none``), once on the fully
    protected set per entry of ``defenses``, and once per ``(fraction, defense)`` of
    ``partial`` × ``partial_defenses`` on a mix where only ``fraction`` of the images are
    protected (the paper's partial-protection experiment: protection of a subset only
    helps if the victim's accuracy does not recover from the clean rest).
    """

    victim: VictimConfig = setting(default_factory=VictimConfig, flatten=True, rename={"model": "victim"},
                                   help="the victim's training recipe")
    defenses: tuple[str, ...] = setting(("none", "grayscale", "jpeg:75", "noaug"),
                                        help="training-time defenses (none, grayscale, jpeg:Q, noaug)")
    partial: tuple[float, ...] = setting((), help="protected fractions for the partial-protection runs, e.g. 0.5,0.8")
    partial_defenses: tuple[str, ...] = setting(("none",), help="defenses of the partial-protection runs")

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
        return build(cls, d)
