"""Image classifiers used as surrogates and victims, behind a small registry.

>>> from raypriv.models import build_model
>>> m = build_model("small_cnn", in_channels=1, num_classes=10, image_size=28)
>>> sum(p.numel() for p in m.parameters()) > 0
True
"""
from __future__ import annotations

from typing import Callable

from raypriv.errors import ConfigError

_MODELS: dict[str, Callable] = {}


def register_model(name: str):
    """Decorator that makes a model factory available under ``name``.

    The factory takes keyword-only ``in_channels``, ``num_classes`` and ``image_size``."""

    def deco(fn):
        _MODELS[name] = fn
        return fn

    return deco


def available_models() -> list[str]:
    _load_builtins()
    return sorted(_MODELS)


def build_model(name: str, *, in_channels: int, num_classes: int, image_size: int):
    """Instantiate a registered model for images of ``in_channels`` × ``image_size``²."""
    _load_builtins()
    if name not in _MODELS:
        raise ConfigError("model", f"unknown model {name!r}; choose one of {sorted(_MODELS)}")
    return _MODELS[name](in_channels=in_channels, num_classes=num_classes, image_size=image_size)


def _load_builtins() -> None:
    from raypriv.models import resnet, small_cnn  # noqa: F401  (registers on import)


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
