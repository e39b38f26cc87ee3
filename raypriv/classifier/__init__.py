"""The core's classifier training recipe: train a fresh classifier with Ray Train and measure
its test accuracy. Every technique's evaluation uses it (unlearnable victims, synthetic-data
and DP-VAE utility). Importing this package does not import Ray or torch.

>>> from raypriv.classifier import VictimConfig
>>> VictimConfig().model
'small_cnn'
"""
from raypriv.classifier.config import DistillConfig, VictimConfig
from raypriv.classifier.train import VictimResult, train_victim, train_victim_payload

__all__ = ["DistillConfig", "VictimConfig", "VictimResult", "train_victim", "train_victim_payload"]
