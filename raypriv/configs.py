"""Helpers shared by raypriv's typed (dataclass) configs.

>>> import dataclasses
>>> @dataclasses.dataclass
... class C:
...     lr: float = 0.1
>>> reject_unknown(C, {"lrr": 1}, what="training setting")
Traceback (most recent call last):
...
raypriv.errors.ConfigError: invalid lrr: unknown training setting; known: ['lr']
"""
from __future__ import annotations

import dataclasses

from raypriv.errors import ConfigError


def reject_unknown(cls, d: dict, *, prefix: str = "", what: str = "setting") -> None:
    """Raise :class:`ConfigError` naming the first key of ``d`` that is not a field of ``cls``
    (as ``prefix + key``, e.g. ``train.epsilonn``)."""
    known = {f.name for f in dataclasses.fields(cls)}
    bad = sorted(set(d) - known)
    if bad:
        raise ConfigError(f"{prefix}{bad[0]}", f"unknown {what}; known: {sorted(known)}")
