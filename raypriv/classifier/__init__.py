"""The core's classifier training recipe: train a fresh classifier with Ray Train and measure
its test accuracy. Every technique's evaluation uses it (unlearnable victims, synthetic-data
and DP-VAE utility). Importing this package does not import Ray or torch.

>>> from raypriv.classifier import VictimConfig
>>> VictimConfig().model
'small_cnn'
"""

from raypriv.lazy import lazy_exports

_MEMBERS = {
    'DistillConfig': 'raypriv.classifier.config',
    'VictimConfig': 'raypriv.classifier.config',
    'VictimResult': 'raypriv.classifier.train',
    'train_victim': 'raypriv.classifier.train',
    'train_victim_payload': 'raypriv.classifier.train',
}
__all__ = sorted(_MEMBERS)
__getattr__, __dir__ = lazy_exports(__name__, _MEMBERS)
