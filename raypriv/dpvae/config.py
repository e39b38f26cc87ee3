"""Settings of DP²-VAE training.

A run has up to two stages, each DP-SGD with Poisson sampling over the private training set:

* ``pretrain`` (stage 1): the whole VAE, ``pretrain_epochs`` epochs. With
  ``pretrain_on="public"`` it runs on a public corpus instead, without noise or privacy cost.
* ``main`` (stage 2): starts from stage 1's weights, freezes the modules named in
  ``freeze`` (default: the encoder) and trains the rest for ``epochs`` epochs, so fewer
  coordinates carry noise.

``method="dp2"`` runs both stages; ``method="dpsgd"`` is the end-to-end baseline (one
stage, the whole VAE, ``pretrain_epochs + epochs`` epochs, the same ε); ``method="none"``
trains without privacy (a reference only: the artifact is marked non-private).

>>> from raypriv.dpvae.config import DPVAEConfig
>>> DPVAEConfig(epsilon=10).stage_names
('pretrain', 'main')
>>> DPVAEConfig(epsilon=0)
Traceback (most recent call last):
...
raypriv.errors.ConfigError: invalid epsilon: must be a finite number > 0, got 0
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any

from raypriv.privacy.accounting import ACCOUNTANTS, check_budget
from raypriv.classifier.config import VictimConfig
from raypriv.configs import build, setting
from raypriv.errors import ConfigError

METHODS = ("dp2", "dpsgd", "none")
PRETRAIN_ON = ("private", "public")
GRAD_SAMPLE_MODES = ("hooks", "functorch", "ew", "ghost")
#: ``mlp_cvae``'s hidden units when ``width`` is None and the run is private, by target ε:
#: ``(smallest ε, width)`` pairs, the first that applies wins. DP noise lands on every trainable
#: coordinate, so a small decoder wins at a small budget and a wider one once the noise is
#: small (chosen on a validation split of ``mnist5k``; README, "How the defaults were chosen").
MLP_WIDTH_BY_EPSILON = ((3.0, 192), (0.0, 128))
#: Default scale of the latent draws when sampling, z ~ N(0, t²I) (:mod:`raypriv.dpvae.sample`).
DEFAULT_TEMPERATURE = 0.5
#: The classifier recipe that judges DP-VAE samples (:mod:`raypriv.dpvae.report`): no
#: BatchNorm, Adam, constant rate, no augmentation.
VICTIM_DEFAULTS = {"model": "plain_cnn", "optimizer": "adam", "lr": 1e-3, "weight_decay": 0.0,
                   "schedule": "constant", "augment": False, "epochs": 10}
#: How far the declared ``dataset_size`` may be from the true record count (either way).
DATASET_SIZE_TOLERANCE = 2.0


@dataclasses.dataclass(frozen=True, kw_only=True)
class DPVAEConfig:
    """``epsilon``/``delta``: the whole run's budget (δ must be < 1/N, checked against the data).
    ``batch_size``: the *expected* global batch (Poisson sampling, rate q = batch_size / N);
    ``max_grad_norm``: per-example clipping norm C; ``budget_split``: the share of ε stage 1
    would spend alone (see :mod:`raypriv.privacy.accounting`); ``beta``: weight of the KL term.
    ``model``/``latent_dim``/``width``: a registered VAE (:mod:`raypriv.dpvae.models`); ``width``
    None means: for a private ``mlp_cvae``, the width for the target ε (:data:`MLP_WIDTH_BY_EPSILON`:
    192 hidden units from ε = 3, 128 below); otherwise the model's own default (128 hidden units
    for ``mlp_cvae``, 32 channels for ``cvae``). :meth:`model_width` resolves it.
    ``grad_sample_mode``: how Opacus clips per-example gradients: ``ghost`` (default; per-example
    gradient norms without per-example gradients, exact for any model, fastest for MLPs),
    ``hooks``, ``functorch`` or ``ew`` (expanded weights).
    ``checkpoint_every``: steps between checkpoints (the ledger records every step anyway).
    ``dataset_size``: the number of private training records *as you declare it publicly*
    (required for private runs; an upper bound or a rounded figure is fine). The sample rate
    q = ``batch_size / dataset_size``, the steps ``epochs / q`` and the update's divisor are
    planned from it, so nothing a run releases depends on the exact count, and the guarantee
    holds for adding or removing one record (README, "What the guarantee covers"). It must be
    within a factor of :data:`DATASET_SIZE_TOLERANCE` of the true count, else the expected
    batch would be far from ``batch_size``.

    The defaults were chosen on a validation split of ``mnist5k``'s training set (never its test
    set); the README's DP²-VAE section has the numbers. In short: DP-SGD wants large expected
    batches and many epochs (σ grows slowly with the steps); β = 2 makes the decoder lean on the
    label instead of the latent code, which under DP noise is what makes samples carry their
    class; the small MLP puts noise on fewer coordinates than the conv VAE."""

    method: str = setting("dp2", choices=METHODS, help="dp2, dpsgd (end-to-end baseline) or none")
    model: str = setting("mlp_cvae", help="VAE architecture: mlp_cvae, cvae (conditional) or vae")
    latent_dim: int = setting(16, help="latent dimensions")
    width: int | None = setting(None, help="hidden units / channels (default: by target ε for mlp_cvae)")
    beta: float = setting(2.0, help="weight of the KL term")
    epsilon: float = setting(10.0, help="the whole run's ε")
    delta: float = setting(1e-5, help="δ (must be < 1/N)")
    accountant: str = setting("prv", choices=ACCOUNTANTS, help="privacy accountant")
    batch_size: int = setting(1024, help="expected global batch (Poisson sampling)")
    max_grad_norm: float = setting(1.0, help="per-example clipping norm C")
    lr: float = setting(1e-2, help="learning rate")
    pretrain_epochs: int = setting(80, help="epochs of stage 1 (pre-training)")
    epochs: int = setting(80, help="epochs of the main stage (of the whole run for baselines: pretrain + main)")
    budget_split: float = setting(0.5, help="share of ε stage 1 would spend alone")
    pretrain_on: str = setting("private", choices=PRETRAIN_ON, help="stage 1 data: the private corpus or a public one (--public)")
    freeze: tuple[str, ...] = setting(("encoder",), help="modules frozen in stage 2 ('' for none)")
    grad_sample_mode: str = setting("ghost", choices=GRAD_SAMPLE_MODES, help="how Opacus clips per-example gradients")
    checkpoint_every: int = setting(50, help="steps between checkpoints")
    dataset_size: int | None = setting(None, help="the training set's size as you declare it publicly (required for private runs; rounded or an upper bound): q and the steps are planned from it, never from the exact count")
    seed: int = setting(0, help="seeds initialisation and the non-secret parts of training")

    def __post_init__(self):
        object.__setattr__(self, "freeze", tuple(self.freeze))
        _one_of("method", self.method, METHODS)
        _one_of("accountant", self.accountant, ACCOUNTANTS)
        _one_of("pretrain_on", self.pretrain_on, PRETRAIN_ON)
        _one_of("grad_sample_mode", self.grad_sample_mode, GRAD_SAMPLE_MODES)
        if self.method != "none":
            check_budget(epsilon=self.epsilon, delta=self.delta)
        for name in ("latent_dim", "batch_size", "checkpoint_every"):
            _positive_int(name, getattr(self, name))
        for name in ("width", "dataset_size"):
            if getattr(self, name) is not None:
                _positive_int(name, getattr(self, name))
        for name in ("pretrain_epochs", "epochs", "seed"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise ConfigError(name, f"must be an integer >= 0, got {v!r}")
        if self.epochs + self.pretrain_epochs < 1:
            raise ConfigError("epochs", "pretrain_epochs + epochs must be >= 1")
        for name in ("beta", "max_grad_norm", "lr"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise ConfigError(name, f"must be a finite number > 0, got {v!r}")
        if self.method == "dp2":
            if self.pretrain_epochs < 1 or self.epochs < 1:
                raise ConfigError("pretrain_epochs", "dp2 needs pretrain_epochs >= 1 and epochs >= 1")
            if self.pretrain_on == "private" and not 0 < self.budget_split < 1:
                raise ConfigError("budget_split", f"must be in (0, 1), got {self.budget_split!r}")

    @property
    def stage_names(self) -> tuple[str, ...]:
        """The stages that run, in order (``pretrain`` is absent for the baselines)."""
        return ("pretrain", "main") if self.method == "dp2" else ("main",)

    @property
    def private_stage_names(self) -> tuple[str, ...]:
        """The stages that touch private data with noise (and are charged)."""
        if self.method == "none":
            return ()
        if self.method == "dp2" and self.pretrain_on == "public":
            return ("main",)
        return self.stage_names

    def model_width(self) -> int | None:
        """The ``width`` the VAE is built with; None: the model's own default.

        >>> DPVAEConfig(epsilon=10).model_width(), DPVAEConfig(epsilon=1).model_width()
        (192, 128)
        >>> DPVAEConfig(method="none").model_width() is None, DPVAEConfig(width=64).model_width()
        (True, 64)
        """
        if self.width is not None:
            return self.width
        if self.model == "mlp_cvae" and self.method != "none":
            return next(w for eps, w in MLP_WIDTH_BY_EPSILON if self.epsilon >= eps)
        return None

    def stage_epochs(self, stage: str) -> int:
        if self.method != "dp2":
            return self.pretrain_epochs + self.epochs
        return self.pretrain_epochs if stage == "pretrain" else self.epochs

    def stage_freeze(self, stage: str) -> tuple[str, ...]:
        return self.freeze if (self.method == "dp2" and stage == "main") else ()

    def planning_rows(self, *, train_rows: int) -> int:
        """The N that q, the steps and the update's divisor are planned from: the declared
        ``dataset_size`` for a private run (never the true count), ``train_rows`` otherwise."""
        return self.dataset_size if self.private_stage_names else (self.dataset_size or train_rows)

    def check_data(self, *, train_rows: int) -> None:
        """Checks that need the training set: a declared size near the true one, δ < 1/N for
        both, and an expected batch no larger than N. (Only the data owner sees these errors.)"""
        if self.private_stage_names:
            if self.dataset_size is None:
                raise ConfigError("dataset_size", "a private run needs the training set's size declared as a public "
                                                  "figure (e.g. --dataset-size 4000, rounded or an upper bound): q "
                                                  "and the steps are planned from it, so that nothing released "
                                                  "depends on the exact number of private records")
            ratio = self.dataset_size / max(train_rows, 1)
            if not 1 / DATASET_SIZE_TOLERANCE <= ratio <= DATASET_SIZE_TOLERANCE:
                raise ConfigError("dataset_size", f"declared {self.dataset_size}, but the corpus has {train_rows} "
                                                  f"rows: the expected batch would be {self.batch_size / ratio:.0f} "
                                                  f"instead of {self.batch_size}; declare a figure within "
                                                  f"{DATASET_SIZE_TOLERANCE:g}x of the true size")
            check_budget(epsilon=self.epsilon, delta=self.delta, dataset_size=max(train_rows, self.dataset_size))
        rows = self.planning_rows(train_rows=train_rows)
        if self.batch_size > rows:
            raise ConfigError("batch_size", f"expected batch {self.batch_size} exceeds the {rows} training rows")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "DPVAEConfig":
        return build(cls, d)


def default_victim(**overrides) -> VictimConfig:
    """:data:`VICTIM_DEFAULTS` with ``overrides`` (any :class:`VictimConfig` field).

    >>> default_victim(epochs=3).model, default_victim(epochs=3).epochs
    ('plain_cnn', 3)
    """
    return VictimConfig(**{**VICTIM_DEFAULTS, **overrides})


def _one_of(name: str, value, choices) -> None:
    if value not in choices:
        raise ConfigError(name, f"must be one of {choices}, got {value!r}")


def _positive_int(name: str, v) -> None:
    if not isinstance(v, int) or isinstance(v, bool) or v < 1:
        raise ConfigError(name, f"must be an integer >= 1, got {v!r}")
