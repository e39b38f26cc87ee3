"""Running a job from the outside: YAML configs with ``--set`` overrides, joining Ray, and the
``jobs/`` entry points (``ray job submit ... -- python jobs/<workload>.py --config C.yaml``).

>>> parse_yaml("3e-3"), parse_yaml("[encoder, decoder.2]"), parse_yaml("null")
(0.003, ['encoder', 'decoder.2'], None)
>>> merge({"train": {"epsilon": 1, "lr": 0.1}}, {"train": {"epsilon": 3}})
{'train': {'epsilon': 3, 'lr': 0.1}}
"""
from __future__ import annotations

import argparse
import dataclasses
from typing import Any, Mapping

from raypriv.errors import ConfigError

__all__ = ["add_settings_file_args", "apply_overrides", "job_args_parser", "job_main", "job_script", "load_job_config", "merge", "merge_dotted", "parse_yaml",
           "run_job"]


def _yaml_loader():
    """PyYAML's safe loader, but reading ``1e-3`` as a float (YAML 1.1 wants ``1.0e-3``,
    and ``lr: 1e-3`` would otherwise arrive as the string ``'1e-3'``)."""
    import re

    import yaml

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_implicit_resolver(
        "tag:yaml.org,2002:float",
        re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
                    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
                    |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
                    |[-+]?\.(?:inf|Inf|INF)
                    |\.(?:nan|NaN|NAN))$""", re.X),
        list("-+0123456789."))
    return Loader


def parse_yaml(text):
    """A YAML document or ``--set`` value (``1e-3`` is a float)."""
    import yaml

    return yaml.load(text, Loader=_yaml_loader())


def merge(base: Mapping[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``top``'s keys laid over it, nested mappings merged key by key."""
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def apply_overrides(cfg: dict, overrides: list[str] | tuple[str, ...]) -> dict:
    """``key=value`` items applied to ``cfg`` (dotted keys reach nested settings; values are
    parsed as YAML: ``synth.iterations=100``, ``evaluate=null``)."""
    settings = {}
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError("--set", f"expected KEY=VALUE, got {item!r}")
        settings[key] = parse_yaml(value)
    return merge_dotted(cfg, settings)


def merge_dotted(base: Mapping[str, Any], settings: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with the dotted ``settings`` laid over it in order (nested mappings merged key by
    key): how ``--set`` and a sweep's trial settings reach nested settings.

    >>> merge_dotted({"train": {"epsilon": 4, "lr": 0.1}}, {"train.epsilon": 1})
    {'train': {'epsilon': 1, 'lr': 0.1}}
    """
    out = dict(base)
    for key, value in settings.items():
        *parents, leaf = key.split(".")
        patch: dict[str, Any] = {leaf: value}
        for part in reversed(parents):
            patch = {part: patch}
        out = merge(out, patch)
    return out


def load_job_config(path: str | None, overrides: list[str] | tuple[str, ...] = ()) -> dict:
    """A YAML job config (or nothing) with ``key=value`` overrides applied."""
    cfg: dict = {}
    if path:
        try:
            with open(path, encoding="utf-8") as f:
                cfg = parse_yaml(f) or {}
        except OSError as e:
            raise ConfigError("--config", f"cannot read {path}: {e.strerror}") from None
        if not isinstance(cfg, dict):
            raise ConfigError("--config", f"{path} is not a mapping of settings")
    return apply_overrides(cfg, overrides)


def run_job(job, *, address: str | None = None, workers: int | None = None, gpus_per_worker: float | None = None,
            verbose: bool = False, reporter=None):
    """Join (or start) Ray, size the job's resources (``workers`` / ``gpus_per_worker`` given here
    win over the job's own; neither: the job's, else chosen from the cluster), run it and print
    its summary; return its :class:`~raypriv.jobs.base.Result`."""
    from raypriv.jobs.base import Reporter
    from raypriv.runtime import ResourceSpec, init_ray

    reporter = reporter if reporter is not None else Reporter()
    init_ray(address, quiet=not verbose)   # inside `ray job submit` this joins the job's cluster
    given = {k: v for k, v in (("workers", workers), ("gpus_per_worker", gpus_per_worker)) if v is not None}
    if job.resources is None:
        job = dataclasses.replace(job, resources=ResourceSpec.auto(**given))
    elif given:                          # flags win over the resources a config file names
        job = dataclasses.replace(job, resources=dataclasses.replace(job.resources, **given))
    result = job.run(reporter)
    for line in result.lines():
        reporter(line)
    return result


def add_settings_file_args(p, *, required: bool = False, example: str = "output=/tmp/x") -> None:
    """``--config FILE.yaml`` and repeated ``--set KEY=VALUE``: how the CLI and the ``jobs/``
    entry points read settings beside (or instead of) flags."""
    p.add_argument("--config", required=required, metavar="FILE.yaml",
                   help="YAML job config (see jobs/configs/); read first")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help=f"override a setting last (dotted keys reach nested settings, values are YAML), e.g. {example}")


def job_args_parser(description: str, *, example: str) -> argparse.ArgumentParser:
    """The arguments every ``jobs/`` entry point takes: ``--config`` and repeated ``--set``."""
    p = argparse.ArgumentParser(description=description)
    add_settings_file_args(p, required=True, example=example)
    p.add_argument("--verbose", action="store_true", help="show Ray's own logs and an error's whole traceback")
    return p


def job_main(name: str, args: argparse.Namespace, *, prog: str | None = None) -> int:
    """A ``jobs/`` entry point: build job ``name`` from ``args.config`` + ``args.set``, run it and
    print where the results are. Returns the exit status: 2 on a raypriv error, 1 on any other,
    each printed as one line prefixed with ``prog`` (:func:`raypriv.runtime.execute.run_entry_point`)."""
    from raypriv.jobs.registry import get_job
    from raypriv.runtime.execute import run_entry_point

    verbose = bool(getattr(args, "verbose", False))

    def run() -> int:
        job = get_job(name).from_dict(load_job_config(args.config, args.set))
        run_job(job, verbose=verbose)
        return 0

    return run_entry_point(run, name=prog or name, verbose=verbose)


def job_script(name: str, doc: str, *, example: str, file: str):
    """``(get_args_parser, main)`` of a ``jobs/`` script that runs job ``name``: the parser is
    described by the script's docstring's first line, errors are prefixed with its file name."""
    import os

    prog = os.path.splitext(os.path.basename(file))[0]

    def get_args_parser() -> argparse.ArgumentParser:
        return job_args_parser(doc.split("\n")[0], example=example)

    def main(args: argparse.Namespace) -> int:
        return job_main(name, args, prog=prog)

    return get_args_parser, main
