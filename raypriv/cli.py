"""The ``raypriv`` command line. Every technique command is a registered job whose flags are
generated from its settings (:mod:`raypriv.jobs.flags`); this module only parses and dispatches.

    raypriv datasets list
    raypriv datasets export mnist5k --format imagefolder --output data/mnist5k
    raypriv protect mnist5k --output out/mnist5k-ue --mode classwise --epsilon 16/255
    raypriv evaluate --clean mnist5k --protected out/mnist5k-ue --output out/mnist5k-eval
    raypriv synth teacher|stats|generate|evaluate|pipeline ...   (see raypriv synth --help)
    raypriv dpvae train|sample|evaluate|pipeline ...             (see raypriv dpvae --help)
    raypriv demo

A job command also takes ``--config FILE.yaml`` (the same settings as the ``jobs/`` entry
points) and ``--set key=value``: the file first, then the flags, then ``--set``.
"""
from __future__ import annotations

import argparse
import sys

from raypriv import __version__


def say(msg: str) -> None:
    print(msg, flush=True)


def _add_cluster_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("cluster")
    g.add_argument("--address", help="join an existing Ray cluster (default: RAY_ADDRESS or an embedded local Ray)")
    g.add_argument("--workers", type=int, default=None, help="parallel workers (default: one per GPU, else 2)")
    g.add_argument("--gpus-per-worker", type=float, default=None, help="GPUs per worker (default: 1 if the cluster has GPUs)")
    g.add_argument("--verbose", action="store_true", help="show Ray's own logs and an error's whole traceback")


def _add_job_parser(sub, name: str, command: str) -> None:
    from raypriv.jobs.entry import add_settings_file_args
    from raypriv.jobs.flags import add_job_arguments
    from raypriv.jobs.registry import get_job

    cls = get_job(name)
    p = sub.add_parser(command, help=cls.summary(), description=(cls.__doc__ or "").strip(),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    add_job_arguments(p, cls)
    add_settings_file_args(p.add_argument_group("settings files"))
    _add_cluster_args(p)
    p.set_defaults(job=name)


def _add_datasets_parser(sub) -> None:
    ds = sub.add_parser("datasets", help="list data sources, export an embedded dataset")
    ds_sub = ds.add_subparsers(dest="datasets_command", required=True)
    ds_sub.add_parser("list", help="list the corpus sources")
    ex = ds_sub.add_parser("export", help="write a corpus as an ImageFolder tree or Parquet")
    ex.add_argument("source")
    ex.add_argument("--split", default="train")
    ex.add_argument("--format", choices=["imagefolder", "parquet"], default="imagefolder")
    ex.add_argument("--output", "-o", required=True)
    ex.add_argument("--overwrite", action="store_true")
    _add_cluster_args(ex)


def get_args_parser() -> argparse.ArgumentParser:
    from raypriv.jobs.registry import group_help, job_names

    parser = argparse.ArgumentParser(prog="raypriv", description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"raypriv {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_datasets_parser(sub)
    groups: dict[str, argparse._SubParsersAction] = {}
    for name in job_names():
        group, _, command = name.rpartition(".")
        if group and group not in groups:
            groups[group] = sub.add_parser(group, help=group_help(group)).add_subparsers(
                dest=f"{group}_command", required=True)
        _add_job_parser(groups[group] if group else sub, name, command)
    demo = sub.add_parser("demo", help="protect an embedded dataset, evaluate it and print the table")
    demo.add_argument("--output", "-o", default="raypriv-out/demo")
    _add_cluster_args(demo)
    return parser


def job_from_args(args: argparse.Namespace):
    """The job a command line describes: ``--config``, then the flags given, then ``--set``."""
    from raypriv.jobs.entry import apply_overrides, load_job_config, merge
    from raypriv.jobs.flags import settings_from_args
    from raypriv.jobs.registry import get_job

    cls = get_job(args.job)
    settings = merge(load_job_config(args.config), settings_from_args(cls, args))
    return cls.from_dict(apply_overrides(settings, args.set))


def cmd_job(args) -> int:
    from raypriv.jobs.entry import run_job

    job = job_from_args(args)  # settings are checked before Ray starts
    run_job(job, address=args.address, workers=args.workers, gpus_per_worker=args.gpus_per_worker,
            verbose=args.verbose)
    return 0


def _connect(args):
    from raypriv.runtime import ResourceSpec, init_ray

    init_ray(args.address, quiet=not args.verbose)
    return ResourceSpec.auto(workers=args.workers, gpus_per_worker=args.gpus_per_worker)


def cmd_datasets(args) -> int:
    from raypriv.data import list_sources

    if args.datasets_command == "list":
        for s in list_sources():
            say(f"{s.name + (':PATH' if s.takes_path else ''):<18} splits={','.join(s.splits):<14} {s.description}")
        return 0
    from raypriv.data import export_imagefolder, load_corpus, write_corpus
    from raypriv.manifest import build_manifest

    _connect(args)
    corpus = load_corpus(args.source, split=args.split)
    if args.format == "imagefolder":
        path = export_imagefolder(corpus, args.output)
    else:
        manifest = build_manifest(method="export", params={"source": args.source, "split": args.split}, seed=None,
                                  input_fingerprint=corpus.keyed_fingerprint())
        path = write_corpus(corpus, args.output, manifest=manifest, overwrite=args.overwrite)
    say(f"wrote {corpus.info.num_rows:,} images of {args.source} ({args.split}) to {path}")
    return 0


def cmd_demo(args) -> int:
    from raypriv.demo import run_demo

    resources = _connect(args)
    run_demo(output=args.output, resources=resources, progress=say)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run one command; an error prints one line (the traceback too with ``--verbose``)."""
    args = get_args_parser().parse_args(argv)
    from raypriv.runtime.execute import run_entry_point

    command = {"datasets": cmd_datasets, "demo": cmd_demo}.get(args.command, cmd_job)
    return run_entry_point(lambda: command(args), name="raypriv", verbose=bool(getattr(args, "verbose", False)))


if __name__ == "__main__":
    sys.exit(main())
