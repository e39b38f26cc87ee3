"""Training-time defenses a victim may apply to (possibly protected) training images.

A defense is named by a spec string: ``none``, ``grayscale``, ``jpeg:Q`` (re-encode at
JPEG quality Q) or ``noaug`` (train without augmentation). Image transforms run as Ray
Data ``map_batches`` over uint8 ``(B, H, W, C)`` batches; a defense can also switch
augmentation off (a recipe flag, not a pixel change). New defenses are added with
:func:`register_defense`.

>>> from raypriv.evaluate.defenses import parse_defense
>>> d = parse_defense("jpeg:75")
>>> d.spec, d.augment
('jpeg:75', True)
>>> parse_defense("blur")
Traceback (most recent call last):
...
raypriv.errors.ConfigError: invalid defense: unknown defense 'blur'; choose one of ['grayscale', 'jpeg:Q', 'noaug', 'none']
"""
from __future__ import annotations

import dataclasses
import functools
import io
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

from raypriv.errors import ConfigError, DataError

ImageFn = Callable[["np.ndarray"], "np.ndarray"]  # numpy is imported where images are touched, so
# parsing a defense spec (a config check, `raypriv --help`) stays free of it

_DEFENSES: dict[str, Callable[[str | None], "Defense"]] = {}
_USAGE: dict[str, str] = {}


@dataclasses.dataclass(frozen=True)
class Defense:
    """A parsed defense.

    ``transform`` maps a uint8 ``(B, H, W, C)`` array to one of the same shape and dtype
    (``None``: pixels unchanged). ``augment=False`` turns the victim's augmentation off.
    ``on_test``: the transform is part of the model's input pipeline and is applied to
    test images too (e.g. a grayscale model sees grayscale test images).
    """

    spec: str
    transform: ImageFn | None = None
    augment: bool = True
    on_test: bool = False

    def apply(self, ds, *, test: bool = False):
        """``ds`` with the transform applied to its ``image`` column (lazily, via Ray Data)."""
        if self.transform is None or (test and not self.on_test):
            return ds
        return ds.map_batches(_map_images, fn_kwargs={"fn": self.transform}, batch_format="numpy")


def _map_images(batch: dict, *, fn: ImageFn) -> dict:
    import numpy as np

    images = batch["image"]
    if isinstance(images, np.ndarray) and images.dtype == object:  # ragged column: stack rows
        images = np.stack(list(images))
    batch["image"] = fn(np.asarray(images, dtype=np.uint8))
    return batch


def register_defense(name: str, *, usage: str | None = None):
    """Decorator making a defense factory available as ``name`` or ``name:ARG``.

    The factory receives the text after the colon (or ``None``) and returns a
    :class:`Defense`; it raises ``ValueError`` with a short message for a bad argument."""

    def deco(factory):
        _DEFENSES[name] = factory
        _USAGE[name] = usage or name
        return factory

    return deco


def available_defenses() -> list[str]:
    """The usage strings of the registered defenses (``jpeg:Q`` etc.)."""
    return sorted(_USAGE.values())


def parse_defense(spec: str, *, field: str = "defense") -> Defense:
    """Parse a defense spec such as ``"jpeg:75"``; ``field`` names the setting in errors."""
    if not isinstance(spec, str) or not spec.strip():
        raise ConfigError(field, f"a defense must be a non-empty string, got {spec!r}")
    name, sep, arg = spec.strip().partition(":")
    if name not in _DEFENSES:
        raise ConfigError(field, f"unknown defense {spec!r}; choose one of {available_defenses()}")
    try:
        return _DEFENSES[name](arg if sep else None)
    except ValueError as e:
        raise ConfigError(field, f"{spec!r}: {e.args[0] if e.args else e}") from None


def _no_arg(name: str, arg: str | None) -> None:
    if arg is not None:
        raise ValueError(f"{name} takes no argument")


@register_defense("none")
def _none(arg: str | None) -> Defense:
    _no_arg("none", arg)
    return Defense("none")


@register_defense("noaug")
def _noaug(arg: str | None) -> Defense:
    _no_arg("noaug", arg)
    return Defense("noaug", augment=False)


@register_defense("grayscale")
def _grayscale(arg: str | None) -> Defense:
    _no_arg("grayscale", arg)
    return Defense("grayscale", transform=grayscale, on_test=True)


@register_defense("jpeg", usage="jpeg:Q")
def _jpeg(arg: str | None) -> Defense:
    try:
        quality = int(arg) if arg is not None else -1
    except ValueError:
        quality = -1
    if not 1 <= quality <= 100:
        raise ValueError(f"jpeg needs an integer quality in [1, 100] as jpeg:Q, got {arg!r}")
    return Defense(f"jpeg:{quality}", transform=functools.partial(jpeg, quality=quality))


def grayscale(images: np.ndarray) -> np.ndarray:
    """ITU-R 601 luminance of RGB ``(B, H, W, 3)`` uint8 images, replicated to 3 channels.

    Single-channel images are returned unchanged."""
    import numpy as np

    if images.shape[-1] == 1:
        return images
    if images.shape[-1] != 3:
        raise DataError(f"grayscale needs 1 or 3 channels, got {images.shape[-1]}", item="grayscale defense")
    y = images.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    y = np.clip(np.rint(y), 0, 255).astype(np.uint8)
    return np.repeat(y[..., None], images.shape[-1], axis=-1)


def jpeg(images: np.ndarray, *, quality: int) -> np.ndarray:
    """Re-encode each uint8 ``(B, H, W, C)`` image (C = 1 or 3) as JPEG at ``quality``."""
    import numpy as np

    from PIL import Image

    out = np.empty_like(images)
    gray = images.shape[-1] == 1
    for i, img in enumerate(images):
        buf = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(img[..., 0] if gray else img)).save(
            buf, format="JPEG", quality=quality)
        buf.seek(0)
        decoded = np.asarray(Image.open(buf).convert("L" if gray else "RGB"))
        out[i] = decoded[..., None] if gray else decoded
    return out
