"""Unlearnable examples: error-minimizing noise (Huang et al., ICLR 2021), sample-wise and class-wise.

Each round trains a surrogate for ``train_steps`` batches on the currently perturbed data
(one Ray task), then runs PGD that *descends* the cross-entropy on every image with the
surrogate frozen (a Ray Data actor-pool job), then stops once the surrogate's accuracy on
the perturbed data reaches ``stop_accuracy``.

>>> from raypriv.unlearnable import UnlearnableConfig
>>> UnlearnableConfig(mode="classwise", epsilon=16/255).budget_255
16
"""

from raypriv.lazy import lazy_exports

_MEMBERS = {
    'NoiseResult': 'raypriv.unlearnable.generator',
    'PRESETS': 'raypriv.unlearnable.config',
    'ProtectResult': 'raypriv.unlearnable.protection',
    'UnlearnableConfig': 'raypriv.unlearnable.config',
    'generate_noise': 'raypriv.unlearnable.generator',
    'protect': 'raypriv.unlearnable.protection',
    'released_dataset': 'raypriv.unlearnable.protection',
}
__all__ = sorted(_MEMBERS)
__getattr__, __dir__ = lazy_exports(__name__, _MEMBERS)
