"""Command-line flags generated from a job's settings, so no flag table is kept by hand.

Every field declared with :func:`raypriv.configs.setting` becomes a flag (``--pgd-steps``) or,
if marked ``positional``, an argument; its help is the field's help with the default appended.
A nested config's fields become ``--<field>-<name>`` flags, or flags of their own names when
the field is declared ``flatten``. Booleans get ``--x/--no-x``; tuples are comma lists. A flag
left out keeps the setting's default: :func:`settings_from_args` returns only what was given,
as the nested mapping :meth:`~raypriv.jobs.base.Job.from_dict` takes.

>>> import argparse
>>> from raypriv.jobs.registry import get_job
>>> p = argparse.ArgumentParser(prog="x")
>>> job = get_job("synth.generate")
>>> add_job_arguments(p, job)
>>> args = p.parse_args(["--teacher", "t", "--stats", "s", "-o", "out", "--iterations", "50", "--no-flip"])
>>> settings_from_args(job, args)
{'teacher': 't', 'stats': 's', 'output': 'out', 'synth': {'iterations': 50, 'flip': False}}
"""
from __future__ import annotations

import argparse
import dataclasses
import typing
from typing import Any, Iterator

from raypriv.configs import field_default, parse_budget, resolved_type

__all__ = ["Flag", "add_job_arguments", "job_flags", "settings_from_args"]


@dataclasses.dataclass(frozen=True)
class Flag:
    """One generated command-line option: where its value goes (``path``) and how it parses."""

    path: tuple[str, ...]
    option: str                 # "--pgd-steps", or the argument's name when positional
    positional: bool
    kwargs: dict[str, Any]
    short: str | None = None    # e.g. "-o"

    @property
    def dest(self) -> str:
        return "setting__" + "__".join(self.path)


def _comma_list(item_type) -> Any:
    def parse(text: str) -> tuple:
        return tuple(item_type(x.strip()) for x in text.split(",") if x.strip())

    parse.__name__ = f"comma-separated {item_type.__name__} list"
    return parse


def _show(value: Any, parse=None) -> str:
    if parse is parse_budget:
        return f"{value * 255:g}/255"
    if isinstance(value, tuple):
        return ",".join(map(str, value)) or "''"
    if isinstance(value, float):
        return f"{value:g}"
    return repr(value) if isinstance(value, str) else str(value)


def _option(f: dataclasses.Field, tp: Any, default: Any, *, path: tuple[str, ...], name: str) -> Flag | None:
    meta = f.metadata
    kwargs: dict[str, Any] = {}
    help_text = meta.get("help", "")
    if typing.get_origin(tp) is tuple:
        kwargs["type"] = meta.get("parse") or _comma_list(typing.get_args(tp)[0])
        kwargs["metavar"] = meta.get("metavar") or "A,B,..."
    elif tp is bool:
        kwargs["action"] = argparse.BooleanOptionalAction
    elif tp in (int, float, str):
        kwargs["type"] = meta.get("parse") or tp
        if meta.get("metavar") or not meta.get("choices"):
            kwargs["metavar"] = meta.get("metavar") or name.upper().replace("-", "_")
    else:
        return None                 # mappings and the like: YAML or --set only
    if meta.get("choices"):
        kwargs["choices"] = meta["choices"]
    required = default is dataclasses.MISSING
    if not required and default is not None:
        help_text += f" (default {_show(default, meta.get('parse'))})"
    kwargs["help"] = help_text
    if meta.get("positional"):
        return Flag(path=path, option=name.replace("-", "_"), positional=True, kwargs=kwargs)
    if required:
        kwargs["help"] += " (required, here or in --config)"
    kwargs["default"] = None
    return Flag(path=path, option="--" + name, positional=False, kwargs=kwargs, short=meta.get("short"))


def _walk(cls, default: Any, *, path: tuple[str, ...], prefix: str, rename: dict[str, str]) -> Iterator[Flag]:
    for f in dataclasses.fields(cls):
        if not f.init or f.metadata.get("flag") is False:
            continue
        tp, _ = resolved_type(cls, f.name)
        value = getattr(default, f.name) if default not in (None, dataclasses.MISSING) else field_default(f)
        name = prefix + (rename.get(f.name) or f.metadata.get("flag") or f.name.replace("_", "-"))
        if dataclasses.is_dataclass(tp):
            if value is None and f.metadata.get("template"):
                value = f.metadata["template"]()
            sub_prefix = prefix if f.metadata.get("flatten") else f"{name}-"
            yield from _walk(tp, value, path=(*path, f.name), prefix=sub_prefix,
                             rename=f.metadata.get("rename") or {})
            continue
        flag = _option(f, tp, value, path=(*path, f.name), name=name)
        if flag is not None:
            yield flag
    for name, meta in getattr(cls, "EXTRA_SETTINGS", {}).items():   # keys only a custom from_dict knows
        yield Flag(path=(*path, name), option="--" + prefix + name.replace("_", "-"), positional=False,
                   kwargs={"default": None, **meta})


def job_flags(job_cls) -> list[Flag]:
    """The flags of ``job_cls``; two settings that would share a flag are a programming error."""
    flags = list(_walk(job_cls, None, path=(), prefix="", rename={}))
    seen: dict[str, tuple] = {}
    for flag in flags:
        if flag.option in seen:
            raise TypeError(f"{job_cls.__name__}: {flag.option} would set both {'.'.join(seen[flag.option])} "
                            f"and {'.'.join(flag.path)}; rename one (setting(rename=...) or flag=...)")
        seen[flag.option] = flag.path
    return flags


def add_job_arguments(parser: argparse.ArgumentParser, job_cls) -> None:
    """Add ``job_cls``'s generated arguments to ``parser``."""
    for flag in job_flags(job_cls):
        if flag.positional:
            parser.add_argument(flag.option, **flag.kwargs)
            continue
        parser.add_argument(flag.option, *([flag.short] if flag.short else []), dest=flag.dest, **flag.kwargs)


def settings_from_args(job_cls, args: argparse.Namespace) -> dict[str, Any]:
    """The settings given on the command line, as a nested mapping (flags left out are absent)."""
    out: dict[str, Any] = {}
    for flag in job_flags(job_cls):
        value = getattr(args, flag.option if flag.positional else flag.dest, None)
        if value is None:
            continue
        node = out
        for part in flag.path[:-1]:
            node = node.setdefault(part, {})
        node[flag.path[-1]] = value
    return out
