"""Declarative job specs shared by the CLI and the ``jobs/`` entry points.

A spec says what to read, what to do and where to write; ``run()`` does it on the
connected Ray cluster. The same spec is built from command-line flags or from YAML.

>>> spec = ProtectJob.from_dict({"source": "digits", "output": "/tmp/x",
...                              "unlearnable": {"mode": "classwise", "epsilon_255": 16}})
>>> spec.unlearnable.budget_255, spec.resources.workers
(16, 1)
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable

from raypriv.errors import ConfigError
from raypriv.runtime import ResourceSpec
from raypriv.unlearnable.config import UnlearnableConfig


def _resources(d: dict | None) -> ResourceSpec:
    d = dict(d or {})
    known = {f.name for f in dataclasses.fields(ResourceSpec)}
    bad = sorted(set(d) - known)
    if bad:
        raise ConfigError(f"resources.{bad[0]}", f"unknown setting; known: {sorted(known)}")
    return ResourceSpec(**d)


@dataclasses.dataclass(kw_only=True)
class ProtectJob:
    """Protect ``source`` (a corpus spec such as ``mnist5k`` or ``cifar10:/data``) into ``output``."""

    source: str
    output: str
    split: str = "train"
    resize: int | None = None
    checkpoint_dir: str | None = None
    keep_checkpoints: bool = False
    overwrite: bool = False
    unlearnable: UnlearnableConfig = dataclasses.field(default_factory=UnlearnableConfig)
    resources: ResourceSpec = dataclasses.field(default_factory=ResourceSpec)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ProtectJob":
        d = dict(d)
        for key in ("source", "output"):
            if not d.get(key):
                raise ConfigError(key, "is required")
        d["unlearnable"] = UnlearnableConfig.from_dict(d.get("unlearnable") or {})
        d["resources"] = _resources(d.get("resources"))
        known = {f.name for f in dataclasses.fields(cls)}
        bad = sorted(set(d) - known)
        if bad:
            raise ConfigError(bad[0], f"unknown job setting; known: {sorted(known)}")
        return cls(**d)

    @classmethod
    def from_yaml(cls, path: str) -> "ProtectJob":
        import yaml

        with open(path) as f:
            return cls.from_dict(yaml.safe_load(f) or {})

    def run(self, *, progress: Callable[[str], None] = print):
        from raypriv.data import load_corpus
        from raypriv.unlearnable import protect

        progress(f"loading {self.source} ({self.split})")
        corpus = load_corpus(self.source, split=self.split, resize=self.resize)
        return protect(corpus, output=self.output, config=self.unlearnable, resources=self.resources,
                       checkpoint_dir=self.checkpoint_dir, keep_checkpoints=self.keep_checkpoints,
                       overwrite=self.overwrite, progress=progress)
