"""Image classifiers used as surrogates, victims, teachers and feature extractors, behind a
small registry (:mod:`raypriv.models.registry`); a :class:`ModelPayload` ships a model to Ray
workers (:mod:`raypriv.models.payload`), and
:func:`bn_layers` finds a network's BatchNorm layers.

>>> from raypriv.models import build_model
>>> m = build_model("small_cnn", in_channels=1, num_classes=10, image_size=28)
>>> sum(p.numel() for p in m.parameters()) > 0
True
"""
from __future__ import annotations

from typing import Any

from raypriv.errors import ConfigError
from raypriv.models.payload import ModelPayload
from raypriv.models.registry import available_models, build_model, register_model

__all__ = ["ModelPayload", "available_models", "bn_layers", "build_from_payload", "build_model", "register_model",
           "to_float_nchw", "worker_device"]


def build_from_payload(payload, device):
    """The model a :class:`ModelPayload` (or a mapping with its fields) describes, on ``device``."""
    return ModelPayload.of(payload).build(device)


def to_float_nchw(images, device=None):
    """uint8 images ``(B, H, W, C)`` (a tensor or an array) → float ``(B, C, H, W)`` in [0, 1],
    on ``device`` (default: where they are): what every model here takes."""
    import torch

    return torch.as_tensor(images, device=device).permute(0, 3, 1, 2).float().div_(255.0)


def worker_device(use_gpu: bool):
    """``cuda`` when asked for and present, else ``cpu``."""
    import torch

    return torch.device("cuda" if use_gpu and torch.cuda.is_available() else "cpu")


def bn_layers(model, *, model_name: str = "model") -> list[tuple[str, Any]]:
    """``(name, module)`` of every BatchNorm layer in forward-definition order; an error if none."""
    import torch

    layers = [(n, m) for n, m in model.named_modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not layers:
        raise ConfigError("teacher", f"{model_name} has no BatchNorm layers; class-wise BN statistics need a "
                                     "network with BatchNorm (e.g. small_cnn, resnet18)")
    return layers
