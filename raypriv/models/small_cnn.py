"""A small VGG-style CNN for small images (digits, MNIST, CIFAR on CPU)."""
from __future__ import annotations

import torch.nn as nn

from raypriv.models import register_model


class SmallCNN(nn.Module):
    """Two conv blocks (conv-BN-ReLU ×2, max-pool) and a linear head.

    ``width`` is the channel count of the first block; the second has twice as many."""

    def __init__(self, *, in_channels: int, num_classes: int, width: int = 32):
        super().__init__()

        def block(cin, cout):
            return nn.Sequential(
                nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
                nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
                nn.MaxPool2d(2),
            )

        self.features = nn.Sequential(block(in_channels, width), block(width, 2 * width))
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
