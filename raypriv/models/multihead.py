"""Multi-head classifiers: one shared backbone, one linear head per task.

``multi_small_cnn`` is ``small_cnn``'s two conv blocks followed by a *spatial* flatten (no
global pooling: a task may depend on where things are, such as the left digit of a pair, and
a trigger-key is a pattern at fixed positions), one shared hidden layer and a head per task.
``num_classes`` is the tuple of per-task class counts; ``forward`` returns the tuple of
per-task logits, and with ``features=True`` also the shared hidden features. With
``log_probs=True`` each head returns log-probabilities (``log_softmax`` of its logits): the same
predictions and the same cross-entropy gradients, without the one direction per head (the sum
of its logits) that softmax ignores. Training never shapes that direction, so it is free to
carry anything the backbone computes; a linear probe on raw logits reads it (measured with MTK:
the un-keyed unsecured logits told the secured digit through it, README "MTK").

>>> import torch
>>> from raypriv.models import build_model
>>> net = build_model("multi_small_cnn", in_channels=1, num_classes=(10, 2), image_size=28)
>>> [tuple(t.shape) for t in net(torch.zeros(3, 1, 28, 28))]
[(3, 10), (3, 2)]
"""
from __future__ import annotations

import torch.nn as nn

from raypriv.models.registry import register_model
from raypriv.models.small_cnn import conv_features


class MultiHeadCNN(nn.Module):
    """Shared conv backbone and hidden layer; ``heads[t]`` maps the hidden features to task t."""

    def __init__(self, *, in_channels: int, num_classes: tuple[int, ...], image_size: int,
                 image_width: int | None = None, width: int = 32, hidden: int = 128, log_probs: bool = False):
        super().__init__()
        if isinstance(num_classes, int):
            num_classes = (num_classes,)
        h, w = image_size // 4, (image_width or image_size) // 4
        self.features = conv_features(in_channels, width)
        self.shared = nn.Sequential(nn.Flatten(), nn.Linear(2 * width * h * w, hidden), nn.ReLU(inplace=True))
        self.heads = nn.ModuleList(nn.Linear(hidden, int(k)) for k in num_classes)
        self.log_probs = bool(log_probs)

    def forward(self, x, features: bool = False):
        z = self.shared(self.features(x))
        logits = tuple(head(z) for head in self.heads)
        if self.log_probs:
            logits = tuple(out.log_softmax(dim=1) for out in logits)
        return (logits, z) if features else logits


@register_model("multi_small_cnn")
def multi_small_cnn(*, in_channels: int, num_classes, image_size: int, image_width: int | None = None,
                    log_probs: bool = False):
    return MultiHeadCNN(in_channels=in_channels, num_classes=tuple(num_classes) if not isinstance(num_classes, int)
                        else (num_classes,), image_size=image_size, image_width=image_width, log_probs=log_probs)
