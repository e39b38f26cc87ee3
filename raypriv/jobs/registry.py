"""The job registry: every technique registers its jobs here, and the CLI, ``jobs/`` and
sweeps find them by name. A name ``group.command`` is the CLI command ``raypriv group command``;
a name without a dot is a top-level command.

>>> sorted(n for n in job_names() if n.startswith("dpvae"))
['dpvae.evaluate', 'dpvae.pipeline', 'dpvae.sample', 'dpvae.train']
>>> get_job("protect").summary()
'Make a corpus unlearnable (error-minimizing noise)'
"""
from __future__ import annotations

import importlib

from raypriv.errors import ConfigError

__all__ = ["get_job", "group_help", "import_plugins", "job_names", "register_group", "register_job"]

#: The modules that register raypriv's own jobs (imported on first lookup): the techniques', and
#: the sweep (an edge over the others, registered like a job so the CLI and jobs/ run it alike).
BUILTIN_JOB_MODULES = ("raypriv.unlearnable.job", "raypriv.evaluate.job", "raypriv.synth.job", "raypriv.dpvae.job",
                       "raypriv.mtk.job", "raypriv.sweeps.job")

_JOBS: dict[str, type] = {}
_GROUPS: dict[str, str] = {}
_loaded = False


def register_job(cls: type) -> type:
    """Class decorator: make ``cls`` (a :class:`~raypriv.jobs.base.Job`) known under ``cls.name``."""
    if not cls.name:
        raise TypeError(f"{cls.__name__} has no name")
    if _JOBS.get(cls.name, cls) is not cls:
        raise TypeError(f"job {cls.name!r} is registered twice ({_JOBS[cls.name].__name__}, {cls.__name__})")
    _JOBS[cls.name] = cls
    return cls


def register_group(name: str, *, help: str) -> None:
    """Name a command group (``raypriv <name> ...``) and give it its help line."""
    _GROUPS[name] = help


def _load_builtins() -> None:
    global _loaded
    if not _loaded:
        for module in BUILTIN_JOB_MODULES:
            importlib.import_module(module)
        _loaded = True


def import_plugins(modules) -> None:
    """Import ``modules`` (names), which register jobs of their own; a ConfigError names one
    that cannot be imported."""
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError as e:
            raise ConfigError("imports", f"cannot import {name!r}: {e}") from None


def job_names() -> list[str]:
    _load_builtins()
    return sorted(_JOBS)


def get_job(name: str) -> type:
    """The job class registered as ``name``; a ConfigError lists the known ones otherwise."""
    _load_builtins()
    if name not in _JOBS:
        raise ConfigError("job", f"unknown job {name!r}; known: {sorted(_JOBS)}")
    return _JOBS[name]


def group_help(name: str) -> str:
    _load_builtins()
    return _GROUPS.get(name, name)
