"""The model registry: factories by name, built for the corpus's image shape and class count."""
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


def build_model(name: str, *, in_channels: int, num_classes, image_size: int, **kwargs):
    """Instantiate a registered model for images of ``in_channels`` × ``image_size``².

    ``num_classes`` is an int for one head; a multi-head factory (a shared backbone with one
    head per task) may take a tuple of per-task class counts. Further ``kwargs`` go to the
    factory as they are (a payload's ``model_kwargs`` round-trip through here)."""
    _load_builtins()
    if name not in _MODELS:
        raise ConfigError("model", f"unknown model {name!r}; choose one of {sorted(_MODELS)}")
    return _MODELS[name](in_channels=in_channels, num_classes=num_classes, image_size=image_size, **kwargs)


#: Modules that register the built-in models when imported (loaded on first use, by name, so
#: that importing the registry imports no torch).
BUILTIN_MODULES = ("raypriv.models.multihead", "raypriv.models.resnet", "raypriv.models.small_cnn")


def _load_builtins() -> None:
    import importlib

    for module in BUILTIN_MODULES:
        importlib.import_module(module)
