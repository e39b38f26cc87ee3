"""Unlearnable examples: error-minimizing noise (Huang et al., ICLR 2021), sample-wise and class-wise.

Each round trains a surrogate for ``train_steps`` batches on the currently perturbed data
(one Ray task), then runs PGD that *descends* the cross-entropy on every image with the
surrogate frozen (a Ray Data actor-pool job), then stops once the surrogate's accuracy on
the perturbed data reaches ``stop_accuracy``.

>>> from raypriv.unlearnable import UnlearnableConfig
>>> UnlearnableConfig(mode="classwise", epsilon=16/255).budget_255
16
"""
from raypriv.unlearnable.config import PRESETS, UnlearnableConfig
from raypriv.unlearnable.generator import NoiseResult, generate_noise
from raypriv.unlearnable.protect import ProtectResult, protect, released_dataset

__all__ = ["PRESETS", "NoiseResult", "ProtectResult", "UnlearnableConfig", "generate_noise", "protect",
           "released_dataset"]
