"""Settings of error-minimizing noise generation (Huang et al., ICLR 2021).

Three presets are provided: ``"strong"`` (natural images such as CIFAR-10; the default
everywhere: ``UnlearnableConfig()``, the CLI, YAML jobs) and ``"restart"`` (easy data such as
handwritten digits) are raypriv's tuned recipes (README, "Presets and what we measured");
``"reference"`` reproduces the paper's code defaults. Every field can be overridden.

>>> UnlearnableConfig() == UnlearnableConfig.preset(DEFAULT_PRESET) == UnlearnableConfig.from_dict({})
True

>>> from raypriv.unlearnable import UnlearnableConfig
>>> cfg = UnlearnableConfig.preset("reference", mode="classwise")
>>> round(cfg.epsilon * 255), cfg.pgd_steps, cfg.train_steps, cfg.stop_accuracy
(8, 20, 10, 0.99)
"""
from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from raypriv.configs import parse_budget, setting
from raypriv.errors import ConfigError

MODES = ("samplewise", "classwise")
#: The preset a run gets when none is named, however it is started.
DEFAULT_PRESET = "strong"
#: Rounds the default recipe runs at least, per mode (measured on the CIFAR-10 subset at
#: 8/255, README: class-wise noise is best taken at the surrogate's first fit, victim 8.8 %,
#: ten rounds over-fit it to the surrogate, 14.6 %; sample-wise noise needs them, 18.7 % → 10.4 %).
DEFAULT_MIN_ROUNDS = {"samplewise": 10, "classwise": 1}


@dataclasses.dataclass(frozen=True, kw_only=True)
class UnlearnableConfig:
    """Parameters of min-min noise generation; names follow the paper's code. The defaults are
    the ``strong`` preset; ``min_rounds`` left unset is the mode's :data:`DEFAULT_MIN_ROUNDS`
    (at most ``max_rounds``: :attr:`effective_min_rounds`).

    Budgets (``epsilon``, ``step_size``) are on the [0, 1] pixel scale.
    """

    EXTRA_SETTINGS: ClassVar[dict] = {"preset": {
        "choices": ("reference", "restart", "strong"),
        "help": f"base settings: 'reference' (the paper's code defaults), 'strong' (tuned for natural images "
                f"such as CIFAR-10) or 'restart' (tuned for easy data such as digits); default {DEFAULT_PRESET!r}, "
                f"as in YAML jobs and the library"}}

    mode: str = setting("samplewise", choices=MODES, help="noise granularity: one pattern per image or per class")
    epsilon: float = setting(8 / 255, parse=parse_budget, metavar="8/255", help="L∞ budget on the [0, 1] scale")
    step_size: float = setting(0.8 / 255, parse=parse_budget, metavar="0.8/255",
                               help="PGD step (a new epsilon alone scales it to epsilon/10)")
    pgd_steps: int = setting(20, help="PGD steps per image per round")
    train_steps: int = setting(20, help="surrogate SGD batches per round (M)")
    stop_accuracy: float = setting(0.99, help="stop once the surrogate is this accurate on perturbed data")
    min_rounds: int | None = setting(None, help="never stop before this many rounds (default: 10 sample-wise, "
                                                "1 class-wise)")
    max_rounds: int = setting(15, help="hard cap, in case the stop criterion is never met")
    surrogate: str = setting("tiny_cnn", help="surrogate model (tiny_cnn, small_cnn, resnet18); low capacity "
                                              "learns what a fresh victim learns first")
    reinit_surrogate: bool = setting(False, help="restart the surrogate from fresh weights every round")
    recalibrate_bn: bool = setting(False, help="re-estimate BatchNorm statistics on the round's sample before PGD")
    lr: float = setting(0.1, help="surrogate learning rate")
    momentum: float = setting(0.9, help="surrogate SGD momentum")
    weight_decay: float = setting(5e-4, help="surrogate weight decay")
    train_batch_size: int = setting(512, help="surrogate training batch")
    pgd_batch_size: int = setting(512, help="images per PGD batch")
    seed: int = setting(0, help="seeds the random starts and the surrogate")

    def __post_init__(self):
        if self.mode not in MODES:
            raise ConfigError("mode", f"must be one of {MODES}, got {self.mode!r}")
        if not 0 < self.epsilon <= 1:
            raise ConfigError("epsilon", f"must be in (0, 1] (pixel scale; 8/255 = {8/255:.4f}), got {self.epsilon}")
        if not 0 < self.step_size <= self.epsilon:
            raise ConfigError("step_size", f"must be in (0, epsilon={self.epsilon:.4f}], got {self.step_size}")
        for name in ("pgd_steps", "train_steps", "max_rounds", "train_batch_size", "pgd_batch_size"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(name, f"must be >= 1, got {getattr(self, name)}")
        if self.min_rounds is not None and not 0 <= self.min_rounds <= self.max_rounds:
            raise ConfigError("min_rounds", f"must be in [0, max_rounds={self.max_rounds}], got {self.min_rounds}")
        if not 0 < self.stop_accuracy <= 1:
            raise ConfigError("stop_accuracy", f"must be in (0, 1], got {self.stop_accuracy}")
        if self.lr <= 0:
            raise ConfigError("lr", f"must be > 0, got {self.lr}")

    @property
    def effective_min_rounds(self) -> int:
        """The rounds a run takes at least: ``min_rounds``, or unset the mode's
        :data:`DEFAULT_MIN_ROUNDS` (at most ``max_rounds``). Left unset in the settings, so a
        resumed run with another ``max_rounds`` keeps the same settings."""
        if self.min_rounds is not None:
            return self.min_rounds
        return min(DEFAULT_MIN_ROUNDS[self.mode], int(self.max_rounds))

    @property
    def budget_255(self) -> int:
        """The L∞ budget in 8-bit levels: released pixels move by at most this much."""
        return int(round(self.epsilon * 255))

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> "UnlearnableConfig":
        """A named preset (``reference``, ``strong`` or ``restart``) with ``overrides`` applied.

        A new ``epsilon`` without a ``step_size`` scales the step with it (ε/10, as in the paper)."""
        if name not in PRESETS:
            raise ConfigError("preset", f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
        if overrides.get("epsilon") is not None and overrides.get("step_size") is None:
            overrides["step_size"] = overrides["epsilon"] / 10   # the paper's ratio (0.8/255 for 8/255)
        merged = {**PRESETS[name], **overrides}
        if overrides.get("min_rounds") is None and "max_rounds" in overrides and "min_rounds" in merged:
            merged["min_rounds"] = min(merged["min_rounds"], overrides["max_rounds"])  # a shorter run lowers the floor too
        return cls(**merged)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "UnlearnableConfig":
        """Build from a plain mapping (:meth:`from_settings`)."""
        return cls.from_settings(d)

    @classmethod
    def from_settings(cls, d: dict[str, Any]) -> "UnlearnableConfig":
        """Build from a plain mapping (YAML/CLI); ``preset`` selects the base, unknown keys are errors.

        Budgets may be given in 8-bit levels as ``epsilon_255`` / ``step_size_255``."""
        d = dict(d)
        preset = d.pop("preset", DEFAULT_PRESET)
        for key in ("epsilon", "step_size"):
            if f"{key}_255" in d:
                d[key] = float(d.pop(f"{key}_255")) / 255
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(unknown[0], f"unknown unlearnable setting; known: {sorted(known)}")
        return cls.preset(preset, **d)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# Each preset is a set of field values over the dataclass defaults.
PRESETS: dict[str, dict[str, Any]] = {
    # Natural images (CIFAR-10): the reference loop with a small surrogate that keeps
    # training across rounds, more batches per round, and (sample-wise) rounds past the first
    # stop: the dataclass defaults. Tuned in benchmarks/unlearnable_effect.py; rationale in README.
    "strong": {},
    # The reference implementation's defaults (HanxunH/Unlearnable-Examples).
    "reference": {"surrogate": "resnet18", "train_steps": 10, "min_rounds": 1, "max_rounds": 50},
    # Easy data (handwritten digits), whose real content a network learns in a few batches:
    # restart the surrogate every round so the noise has to be what a *fresh* network fits.
    "restart": {
        "surrogate": "tiny_cnn",
        "reinit_surrogate": True,    # every round asks: what makes a *fresh* network fit this data fast?
        "recalibrate_bn": True,      # PGD attacks the network that was actually trained
        "train_steps": 20,
        "stop_accuracy": 0.9,        # a fresh surrogate fits the perturbed data in 20 steps
        "min_rounds": 5,
        "max_rounds": 15,
    },
}
