"""The source registry: names like ``mnist5k`` or ``cifar10:PATH`` mapped to loaders.

A source factory is called as ``factory(arg, *, split, download)`` where ``arg`` is the
part of the spec after the first ``:`` (or None) and returns a raw :class:`Corpus`
(its ``num_rows``/``image_shape`` may be placeholders, ``num_classes`` may be 0 to infer
it); :func:`load_corpus` then resizes, validates and materializes it.

>>> from raypriv.data import list_sources
>>> [s.name for s in list_sources()][:2]
['cifar10', 'digits']
"""
from __future__ import annotations

import dataclasses
import re
from typing import Callable

from raypriv.data.corpus import Corpus
from raypriv.errors import ConfigError

SPLITS = ("train", "test", "all")


@dataclasses.dataclass(frozen=True)
class SourceInfo:
    """A registered source: its name, one-line description, splits, and whether its spec
    takes a path (``name:PATH``)."""

    name: str
    description: str
    splits: tuple[str, ...]
    takes_path: bool


Factory = Callable[..., Corpus]
_REGISTRY: dict[str, tuple[SourceInfo, Factory]] = {}
_BUILTINS_LOADED = False


def register_source(
    name: str, *, description: str, splits: tuple[str, ...], takes_path: bool = False
) -> Callable[[Factory], Factory]:
    """Decorator registering ``factory(arg, *, split, download) -> Corpus`` as source ``name``.

    ``takes_path=True`` means the spec must be ``name:PATH``; otherwise no argument is
    accepted. Registering an existing name replaces it.

    >>> @register_source("tiny", description="two images", splits=("train",))
    ... def _tiny(arg, *, split, download): ...
    """
    if not re.fullmatch(r"[a-z][a-z0-9_\-]*", name or ""):
        raise ConfigError("name", f"source names are lowercase identifiers, got {name!r}")
    bad = [s for s in splits if s not in SPLITS]
    if not splits or bad:
        raise ConfigError("splits", f"must be a non-empty subset of {SPLITS}, got {splits!r}")

    def decorator(factory: Factory) -> Factory:
        _REGISTRY[name] = (SourceInfo(name, description, tuple(splits), bool(takes_path)), factory)
        return factory

    return decorator


def _load_builtins() -> None:
    """Register the built-in sources (once, lazily; user registrations take precedence)."""
    global _BUILTINS_LOADED
    if _BUILTINS_LOADED:
        return
    from raypriv.data import cifar10, embedded, imagefolder, parquet

    builtins = [
        ("digits", embedded.load_digits, embedded.DIGITS_DESCRIPTION, ("train", "test", "all"), False),
        ("mnist5k", embedded.load_mnist5k, embedded.MNIST5K_DESCRIPTION, ("train", "test", "all"), False),
        ("mnist5k-tasks", embedded.load_mnist5k_tasks, embedded.MNIST5K_TASKS_DESCRIPTION, ("train", "test", "all"),
         False),
        ("mnist5k-pairs", embedded.load_mnist5k_pairs, embedded.MNIST5K_PAIRS_DESCRIPTION, ("train", "test", "all"),
         False),
        ("cifar10", cifar10.load_cifar10, cifar10.DESCRIPTION, ("train", "test", "all"), True),
        ("imagefolder", imagefolder.load_imagefolder, imagefolder.DESCRIPTION, ("train", "test"), True),
        ("parquet", parquet.load_parquet, parquet.DESCRIPTION, ("train", "test", "all"), True),
    ]
    for name, factory, desc, splits, takes_path in builtins:
        if name not in _REGISTRY:
            register_source(name, description=desc, splits=splits, takes_path=takes_path)(factory)
    _BUILTINS_LOADED = True


def list_sources() -> list[SourceInfo]:
    """All registered sources, sorted by name."""
    _load_builtins()
    return [info for _, (info, _) in sorted(_REGISTRY.items())]


def parse_spec(spec: str) -> tuple[str, str | None]:
    """Split ``"name:PATH"`` into ``("name", "PATH")``; ``"name"`` gives ``("name", None)``."""
    if not isinstance(spec, str) or not spec.strip():
        raise ConfigError("spec", f"expected 'name' or 'name:PATH', got {spec!r}")
    name, sep, arg = spec.strip().partition(":")
    return name.strip().lower(), (arg if sep and arg else None)


#: The suffix of a spec whose training split is cut into training and validation rows.
VALIDATION_SUFFIX = "#validation="


def split_validation(spec: str) -> tuple[str, float | None]:
    """``"mnist5k#validation=0.2"`` → ``("mnist5k", 0.2)``: the spec of a corpus whose ``train``
    split is the training split minus a validation holdout (:func:`raypriv.data.holdout`) of that
    fraction, and whose ``validation`` split is the holdout; other splits are the source's own.
    A spec without the suffix gives ``(spec, None)``.

    >>> split_validation("parquet:/data/x#validation=0.25"), split_validation("mnist5k")
    (('parquet:/data/x', 0.25), ('mnist5k', None))
    """
    if not isinstance(spec, str) or VALIDATION_SUFFIX not in spec:
        return spec, None
    base, _, text = spec.rpartition(VALIDATION_SUFFIX)
    try:
        fraction = float(text)
    except ValueError:
        fraction = -1.0
    if not 0.0 < fraction < 1.0:
        raise ConfigError("spec", f"{spec!r}: the validation fraction must be a number in (0, 1), got {text!r}")
    return base, fraction


def _load_with_validation(spec: str, fraction: float, *, split: str, **kwargs) -> Corpus:
    from raypriv.data.holdout import holdout

    if split not in ("train", "validation"):
        return load_corpus(spec, split=split, **kwargs)
    rest, held = holdout(load_corpus(spec, split="train", **kwargs), fraction=fraction)
    part = rest if split == "train" else held
    return Corpus(ds=part.ds, info=dataclasses.replace(part.info, source=f"{spec}{VALIDATION_SUFFIX}{fraction:g}"))


def get_source(name: str) -> tuple[SourceInfo, Factory]:
    _load_builtins()
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY))
        raise ConfigError("spec", f"unknown source {name!r}; known sources: {known}") from None


def load_corpus(
    spec: str,
    *,
    split: str = "train",
    resize: int | None = None,
    validate: bool = True,
    download: bool = False,
) -> Corpus:
    """Load, validate and materialize a corpus from a source spec.

    ``spec`` is ``name`` or ``name:PATH`` (see :func:`list_sources`), optionally followed by
    ``#validation=F`` (:func:`split_validation`: a validation split cut from ``train``); ``resize=N``
    resizes every image to NxN (PIL bilinear), which also makes mixed sizes acceptable.
    ``validate=False`` skips the label/size/duplicate checks (decoding errors still
    raise). Raises :class:`~raypriv.errors.DataError` naming the offending item, or
    :class:`~raypriv.errors.ConfigError` for a bad spec, split or resize.
    """
    from raypriv.runtime.execute import unwrap_errors
    from raypriv.data.validate import finalize_corpus

    spec, fraction = split_validation(spec)
    if fraction is not None:
        return _load_with_validation(spec, fraction, split=split, resize=resize, validate=validate, download=download)
    name, arg = parse_spec(spec)
    info, factory = get_source(name)
    if split not in info.splits:
        raise ConfigError("split", f"source {name!r} offers splits {info.splits}, got {split!r}")
    if info.takes_path and not arg:
        raise ConfigError("spec", f"source {name!r} needs a path: '{name}:PATH'")
    if not info.takes_path and arg:
        raise ConfigError("spec", f"source {name!r} takes no path, got {spec!r}")
    if resize is not None and (isinstance(resize, bool) or not isinstance(resize, int) or resize < 1):
        raise ConfigError("resize", f"must be a positive integer or None, got {resize!r}")
    with unwrap_errors():
        raw = factory(arg, split=split, download=download)
    if not isinstance(raw, Corpus):
        raise ConfigError("source", f"factory for {name!r} returned {type(raw).__name__}, not Corpus")
    canonical = name if arg is None else f"{name}:{arg}"
    raw = Corpus(ds=raw.ds, info=dataclasses.replace(raw.info, source=canonical, split=split))
    return finalize_corpus(raw, resize=resize, validate=validate)
