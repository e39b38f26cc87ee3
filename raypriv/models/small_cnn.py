"""A small VGG-style CNN for small images (digits, MNIST, CIFAR on CPU)."""
from __future__ import annotations

import torch.nn as nn

from raypriv.models.registry import register_model


def conv_features(in_channels: int, width: int) -> nn.Sequential:
    """Two conv blocks (conv-BN-ReLU ×2, max-pool), ``width`` then ``2 * width`` channels:
    the backbone of ``small_cnn`` and of the multi-head models."""

    def block(cin, cout):
        return nn.Sequential(
            nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
            nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
        )

    return nn.Sequential(block(in_channels, width), block(width, 2 * width))


class SmallCNN(nn.Module):
    """Two conv blocks (conv-BN-ReLU ×2, max-pool) and a linear head.

    ``width`` is the channel count of the first block; the second has twice as many."""

    def __init__(self, *, in_channels: int, num_classes: int, width: int = 32):
        super().__init__()
        self.features = conv_features(in_channels, width)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(2 * width, num_classes)

    def forward(self, x):
        return self.head(self.pool(self.features(x)).flatten(1))


@register_model("small_cnn")
def small_cnn(*, in_channels: int, num_classes: int, image_size: int):
    return SmallCNN(in_channels=in_channels, num_classes=num_classes)


@register_model("tiny_cnn")
def tiny_cnn(*, in_channels: int, num_classes: int, image_size: int):
    """Half the width of ``small_cnn``: a low-capacity surrogate."""
    return SmallCNN(in_channels=in_channels, num_classes=num_classes, width=16)


class PlainCNN(nn.Module):
    """conv-ReLU-max-pool ×2 and two linear layers, no BatchNorm: the classic MNIST network.

    It scores *synthetic* training sets (``raypriv dpvae evaluate``): a classifier trained on
    generated images is tested on real ones, and BatchNorm statistics of smooth generated digits
    do not transfer to sharp real digits (``small_cnn`` trained on DP-VAE samples reaches 20 % on
    real MNIST where this network reaches 77-81 %; see the README)."""

    def __init__(self, *, in_channels: int, num_classes: int, image_size: int, width: int = 32, hidden: int = 128):
        super().__init__()
        side = image_size // 4
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2), nn.Flatten())
        self.head = nn.Sequential(nn.Linear(2 * width * side * side, hidden), nn.ReLU(inplace=True),
                                  nn.Linear(hidden, num_classes))

    def forward(self, x):
        return self.head(self.features(x))


@register_model("plain_cnn")
def plain_cnn(*, in_channels: int, num_classes: int, image_size: int):
    return PlainCNN(in_channels=in_channels, num_classes=num_classes, image_size=image_size)
