"""Image classifiers used as surrogates, victims, teachers and feature extractors, behind a
small registry (:mod:`raypriv.models.registry`); payloads ship a model to Ray workers, and
:func:`bn_layers` finds a network's BatchNorm layers.

>>> from raypriv.models import build_model
>>> m = build_model("small_cnn", in_channels=1, num_classes=10, image_size=28)
>>> sum(p.numel() for p in m.parameters()) > 0
True
"""
from __future__ import annotations

from typing import Any

from raypriv.errors import ConfigError
from raypriv.models.registry import available_models, build_model, register_model

__all__ = ["available_models", "bn_layers", "build_from_payload", "build_model", "register_model", "worker_device"]


def build_from_payload(payload: dict, device):
    """Rebuild a model from a payload ``{"model": name, "model_kwargs": ..., "state": state_dict}``
    on ``device`` (the form every technique ships weights to Ray workers in)."""
    model = build_model(payload["model"], **payload["model_kwargs"]).to(device)
    model.load_state_dict(payload["state"])
    return model


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
