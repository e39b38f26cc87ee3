"""Typed settings: how raypriv's frozen dataclass configs describe their fields and are built
from plain mappings (YAML, ``--set``, CLI flags and, later, a Tune ``param_space``: one path).

A field declared with :func:`setting` carries its help text (the CLI's ``--help`` is generated
from it) and, optionally, choices, a parser for command-line text and how nested settings map
to flags. :func:`build` turns a mapping into a config: a nested mapping overrides the field's
default (so a job whose teacher trains 15 epochs keeps 15 when only ``lr`` is given), lists
become tuples, and an unknown key is a :class:`~raypriv.errors.ConfigError` naming it with
its dotted path.

>>> from raypriv.classifier.config import VictimConfig
>>> teacher = build(VictimConfig, {"lr": 0.2}, base=VictimConfig(epochs=15))
>>> teacher.lr, teacher.epochs
(0.2, 15)
>>> build(VictimConfig, {"lrr": 1}, prefix="teacher.")
Traceback (most recent call last):
...
raypriv.errors.ConfigError: invalid teacher.lrr: unknown setting; known: ['augment', 'batch_size', 'epochs', 'eval_batch_size', 'hflip', 'lr', 'model', 'momentum', 'nesterov', 'optimizer', 'schedule', 'seed', 'weight_decay']
"""
from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, Callable, Mapping

from raypriv.errors import ConfigError

__all__ = ["build", "field_default", "parse_budget", "reject_unknown", "resolved_type", "setting"]


def setting(default: Any = dataclasses.MISSING, *, help: str, default_factory: Callable | None = None,
            choices: tuple | None = None, parse: Callable[[str], Any] | None = None, flag: str | bool | None = None,
            short: str | None = None, positional: bool = False, flatten: bool = False,
            rename: Mapping[str, str] | None = None, template: Callable | None = None,
            metavar: str | None = None) -> Any:
    """A dataclass field with what the CLI and the docs need to know about it.

    ``help``: one line (the default is appended by ``--help``); ``choices``: the allowed values;
    ``parse``: command-line text → value (e.g. ``8/255`` → a budget); ``flag``: the flag's name
    without dashes (default: the field name with ``-``), ``False`` for a setting given only in
    YAML or ``--set``; ``short``: e.g. ``-o``; ``positional``: an argument, not a flag.
    For a nested config: ``flatten`` gives its fields flags of their own names (else
    ``--<field>-<name>``), ``rename`` renames some of them, ``template`` builds it when its
    default is ``None`` and a mapping sets it.
    """
    meta = {"help": help, "choices": choices, "parse": parse, "flag": flag, "short": short,
            "positional": positional, "flatten": flatten, "rename": dict(rename or {}), "template": template,
            "metavar": metavar}
    if default_factory is not None:
        return dataclasses.field(default_factory=default_factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def reject_unknown(cls, d: Mapping, *, prefix: str = "", what: str = "setting") -> None:
    """Raise :class:`ConfigError` naming the first key of ``d`` that is not a field of ``cls``
    (as ``prefix + key``, e.g. ``train.epsilonn``)."""
    known = {f.name for f in dataclasses.fields(cls) if f.init}
    bad = sorted(set(d) - known)
    if bad:
        raise ConfigError(f"{prefix}{bad[0]}", f"unknown {what}; known: {sorted(known)}")


def resolved_type(cls, name: str) -> tuple[Any, bool]:
    """``(type, optional)`` of field ``name`` of dataclass ``cls``: ``int | None`` → ``(int, True)``."""
    tp = typing.get_type_hints(cls)[name]
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return (args[0] if len(args) == 1 else tp), len(args) < len(typing.get_args(tp))
    return tp, False


def field_default(f: dataclasses.Field) -> Any:
    """A field's default value (a fresh one for a ``default_factory``); ``MISSING`` if required."""
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


def _coerce(value: Any, tp: Any) -> Any:
    """Lists become tuples for tuple fields and ints become floats for float fields; every
    other check is the config's own ``__post_init__``."""
    if typing.get_origin(tp) is tuple and isinstance(value, list):
        return tuple(value)
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def build(cls, d: Mapping[str, Any] | Any, *, base: Any = None, prefix: str = ""):
    """``cls`` from the mapping ``d`` (already a ``cls``: returned as is), over ``base``.

    A class with a ``from_settings`` classmethod (one with named presets) builds itself. Keys
    of nested configs are reported with their path (``train.epsilon``)."""
    if isinstance(d, cls):
        return d
    if not isinstance(d, Mapping):
        raise ConfigError(prefix.rstrip(".") or cls.__name__, f"expected a mapping of settings, got {d!r}")
    if hasattr(cls, "from_settings"):
        return cls.from_settings(dict(d))
    reject_unknown(cls, d, prefix=prefix)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in d.items():
        tp, optional = resolved_type(cls, key)
        if dataclasses.is_dataclass(tp) and value is not None:
            sub_base = getattr(base, key) if base is not None else field_default(fields[key])
            if sub_base in (None, dataclasses.MISSING):
                template = fields[key].metadata.get("template")
                sub_base = template() if template else None
            kwargs[key] = build(tp, value, base=sub_base, prefix=f"{prefix}{key}.")
        elif value is None and not optional and dataclasses.is_dataclass(tp):
            raise ConfigError(f"{prefix}{key}", "cannot be null")
        else:
            kwargs[key] = _coerce(value, tp)
    if base is not None:
        return dataclasses.replace(base, **kwargs)
    missing = [f.name for f in fields.values() if f.init and f.name not in kwargs
               and field_default(f) is dataclasses.MISSING]
    if missing:
        raise ConfigError(f"{prefix}{missing[0]}", "is required")
    return cls(**kwargs)


def parse_budget(text: str) -> float:
    """``8/255`` or a number in (0, 1] → a budget on the [0, 1] pixel scale (the CLI's parser
    for pixel budgets; its error names the flag and says how to write one).

    >>> round(parse_budget("8/255") * 255)
    8
    """
    import argparse
    from fractions import Fraction

    try:
        value = float(Fraction(text)) if "/" in text else float(text)
    except (ValueError, ZeroDivisionError):
        raise argparse.ArgumentTypeError(f"not a budget: {text!r} (write 8/255 or 0.0314)")
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"budget {text!r} is outside (0, 1]; write 8-bit levels as 8/255")
    return value
