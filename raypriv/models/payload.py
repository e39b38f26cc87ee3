"""A model as it travels: to Ray workers, into checkpoints and reports.

A :class:`ModelPayload` is the registry name, the constructor's keyword arguments (derived
from the corpus: :meth:`ModelPayload.image_kwargs`) and the weights, and builds the network on
any device. It carries no data and no secret, only what rebuilds the model.

>>> p = ModelPayload(model="small_cnn", model_kwargs=ModelPayload.image_kwargs((8, 8, 1), 10))
>>> net = p.build("cpu")
>>> p.num_classes, type(net).__name__, ModelPayload.of(p.with_state(net.state_dict())).state is not None
(10, 'SmallCNN', True)
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping

__all__ = ["ModelPayload"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class ModelPayload:
    """``model``: a registered name; ``model_kwargs``: its constructor's arguments; ``state``:
    a state_dict (``None``: fresh weights)."""

    model: str
    model_kwargs: Mapping[str, Any]
    state: Mapping[str, Any] | None = None

    @staticmethod
    def image_kwargs(image_shape, num_classes) -> dict[str, Any]:
        """The kwargs every image model takes, from an ``(H, W, C)`` shape and the class count
        (an int, or a tuple of per-task counts for a multi-head model)."""
        h, _, c = image_shape
        classes = tuple(int(k) for k in num_classes) if isinstance(num_classes, (tuple, list)) else int(num_classes)
        return {"in_channels": int(c), "num_classes": classes, "image_size": int(h)}

    @classmethod
    def of(cls, payload: "ModelPayload | Mapping[str, Any]") -> "ModelPayload":
        """A payload from itself or from a mapping with (at least) ``model``, ``model_kwargs``, ``state``."""
        if isinstance(payload, cls):
            return payload
        return cls(model=payload["model"], model_kwargs=dict(payload["model_kwargs"]), state=payload.get("state"))

    @property
    def num_classes(self):
        return self.model_kwargs["num_classes"]

    def with_state(self, state: Mapping[str, Any]) -> "ModelPayload":
        return dataclasses.replace(self, state=state)

    def build(self, device: Any = "cpu", *, builder: Callable | None = None):
        """The network on ``device``, with the weights loaded; ``builder`` is the registry's
        build function (default: the classifier registry, :func:`raypriv.models.build_model`)."""
        if builder is None:
            from raypriv.models.registry import build_model as builder
        net = builder(self.model, **self.model_kwargs)
        if self.state is not None:
            net.load_state_dict(self.state)
        return net.to(device)
