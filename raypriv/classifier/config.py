"""The classifier training recipe every technique measures with: a model trained from
scratch by Ray Train (:mod:`raypriv.classifier.train`), with these settings.

The defaults follow the unlearnable-examples paper's CIFAR victim (SGD, lr 0.1, momentum
0.9, weight decay 5e-4, batch 128, crop + flip augmentation), shortened to 20 epochs of a
small CNN so it runs on a CPU.

>>> from raypriv.classifier.config import VictimConfig
>>> VictimConfig(epochs=5).epochs
5
>>> VictimConfig(lr=0)
Traceback (most recent call last):
...
raypriv.errors.ConfigError: invalid lr: must be > 0, got 0
"""
from __future__ import annotations

import dataclasses

from raypriv.configs import setting
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

    model: str = setting("small_cnn", help="registered model (small_cnn, plain_cnn, tiny_cnn, resnet18)")
    epochs: int = setting(20, help="training epochs")
    batch_size: int = setting(128, help="global batch (split over the workers)")
    optimizer: str = setting("sgd", choices=OPTIMIZERS, help="optimizer")
    lr: float = setting(0.1, help="learning rate")
    momentum: float = setting(0.9, help="SGD momentum")
    nesterov: bool = setting(True, help="Nesterov momentum (SGD)")
    weight_decay: float = setting(5e-4, help="weight decay")
    schedule: str = setting("cosine", choices=SCHEDULES, help="learning-rate schedule")
    augment: bool = setting(True, help="random crops (and flips, see hflip) while training")
    hflip: bool | None = setting(None, help="random horizontal flips (default: for 3-channel images only)")
    eval_batch_size: int = setting(512, help="batch for scoring")
    seed: int = setting(0, help="seeds initialisation, shuffling and augmentation")

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

    temperature: float = setting(4.0, help="softmax temperature T of the distillation loss")
    mixup_alpha: float = setting(1.0, help="Beta(α, α) image mixing; 0 turns it off")

    def __post_init__(self):
        if not self.temperature > 0:
            raise ConfigError("temperature", f"must be > 0, got {self.temperature}")
        if not self.mixup_alpha >= 0:
            raise ConfigError("mixup_alpha", f"must be >= 0, got {self.mixup_alpha}")
