"""Package namespaces that import their members on first use.

A technique package lists its public API in ``__init__`` but imports a member's module only
when the member is used, so ``import raypriv.dpvae`` (and ``raypriv --help``) stays free of
torch and Ray.

>>> import sys
>>> getattr_, dir_ = lazy_exports("pkg", {"sqrt": "math"})
>>> getattr_("sqrt")(9.0), "sqrt" in dir_()
(3.0, True)
"""
from __future__ import annotations

import importlib
from typing import Callable


def lazy_exports(package: str, members: dict[str, str]) -> tuple[Callable, Callable]:
    """``(__getattr__, __dir__)`` for ``package`` whose public ``members`` map names to the
    modules that define them (PEP 562)."""

    def __getattr__(name: str):
        if name not in members:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(members[name]), name)

    def __dir__() -> list[str]:
        return sorted(members)

    return __getattr__, __dir__
