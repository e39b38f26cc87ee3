"""The ``raypriv`` command line: argument parsing only; work is done by library functions.

    raypriv datasets list
    raypriv datasets export mnist5k --format imagefolder --output data/mnist5k
    raypriv protect mnist5k --output out/mnist5k-ue --mode classwise --epsilon 16/255
    raypriv evaluate --clean mnist5k --protected out/mnist5k-ue --output out/mnist5k-eval
    raypriv synth teacher|stats|generate|evaluate ...     (see raypriv synth --help)
    raypriv demo
"""
from __future__ import annotations

import argparse
import sys
from fractions import Fraction

from raypriv import __version__


def say(msg: str) -> None:
    print(msg, flush=True)


def parse_budget(text: str) -> float:
    """``8/255`` or a float in (0, 1] → a budget on the [0, 1] pixel scale."""
    try:
        value = float(Fraction(text)) if "/" in text else float(text)
    except (ValueError, ZeroDivisionError):
        raise argparse.ArgumentTypeError(f"not a budget: {text!r} (write 8/255 or 0.0314)")
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"budget {text!r} is outside (0, 1]; write 8-bit levels as 8/255")
    return value


def _add_cluster_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("cluster")
    g.add_argument("--address", help="join an existing Ray cluster (default: RAY_ADDRESS or an embedded local Ray)")
    g.add_argument("--workers", type=int, default=None, help="parallel workers (default: one per GPU, else 2)")
    g.add_argument("--gpus-per-worker", type=float, default=None, help="GPUs per worker (default: 1 if the cluster has GPUs)")
    g.add_argument("--verbose", action="store_true", help="show Ray's own logs and progress bars")


def _add_protect_args(p: argparse.ArgumentParser) -> None:
    from raypriv.unlearnable.config import DEFAULT_PRESET, PRESETS

    p.add_argument("source", help="corpus spec: digits, mnist5k, cifar10:PATH, imagefolder:PATH, parquet:PATH")
    p.add_argument("--output", "-o", required=True, help="output directory (local path or pyarrow filesystem URI)")
    p.add_argument("--split", default="train")
    p.add_argument("--resize", type=int, help="resize every image to N×N (otherwise mixed sizes are an error)")
    p.add_argument("--preset", default=DEFAULT_PRESET, choices=sorted(PRESETS),
                   help=f"base settings: 'reference' (the paper's code defaults), 'strong' (tuned for natural "
                        f"images such as CIFAR-10) or 'restart' (tuned for easy data such as digits); "
                        f"default {DEFAULT_PRESET!r}, as in YAML jobs and the library")
    p.add_argument("--mode", choices=["samplewise", "classwise"], help="noise granularity (default: preset's)")
    p.add_argument("--epsilon", type=parse_budget, help="L∞ budget, e.g. 8/255")
    p.add_argument("--step-size", type=parse_budget, help="PGD step, e.g. 0.8/255")
    p.add_argument("--pgd-steps", type=int)
    p.add_argument("--train-steps", type=int, help="surrogate batches per round (M)")
    p.add_argument("--stop-accuracy", type=float)
    p.add_argument("--min-rounds", type=int, help="never stop before this many rounds")
    p.add_argument("--max-rounds", type=int)
    p.add_argument("--surrogate", help="surrogate model (small_cnn, tiny_cnn, resnet18)")
    p.add_argument("--lr", type=float, help="surrogate learning rate")
    p.add_argument("--seed", type=int)
    p.add_argument("--checkpoint-dir", help="where per-round checkpoints go (default: OUTPUT.checkpoints)")
    p.add_argument("--keep-checkpoints", action="store_true")
    p.add_argument("--overwrite", action="store_true", help="replace an existing finished output")
    _add_cluster_args(p)


_OVERRIDES = ("mode", "epsilon", "step_size", "pgd_steps", "train_steps", "stop_accuracy", "min_rounds", "max_rounds",
              "surrogate", "lr", "seed")


def _add_evaluate_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--clean", required=True, help="spec of the clean corpus (its test split is the test set)")
    p.add_argument("--protected", required=True, help="directory written by `raypriv protect`")
    p.add_argument("--output", "-o", required=True, help="where report.json and grid.png go")
    p.add_argument("--test-split", default="test")
    p.add_argument("--defenses", default="none,grayscale,jpeg:75,noaug",
                   help="comma list of training-time defenses (none, grayscale, jpeg:Q, noaug)")
    p.add_argument("--partial", default="", help="comma list of protected fractions, e.g. 0.5,0.8")
    p.add_argument("--victim", default="small_cnn", help="victim model")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    _add_cluster_args(p)


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="raypriv", description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"raypriv {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

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

    _add_protect_args(sub.add_parser("protect", help="make a corpus unlearnable (error-minimizing noise)"))
    _add_evaluate_args(sub.add_parser("evaluate", help="train victims on clean vs protected data and compare"))
    from raypriv.synth.cli import add_synth_parser

    add_synth_parser(sub, add_cluster_args=_add_cluster_args)
    from raypriv.dpvae.cli import add_dpvae_parser

    add_dpvae_parser(sub, add_cluster_args=_add_cluster_args)
    demo = sub.add_parser("demo", help="protect an embedded dataset, evaluate it and print the table")
    demo.add_argument("--output", "-o", default="raypriv-out/demo")
    _add_cluster_args(demo)
    return parser


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


def protect_job_from_args(args):
    from raypriv.jobspec import ProtectJob
    from raypriv.unlearnable import UnlearnableConfig

    overrides = {k: getattr(args, k) for k in _OVERRIDES if getattr(args, k) is not None}
    return ProtectJob(source=args.source, output=args.output, split=args.split, resize=args.resize,
                      checkpoint_dir=args.checkpoint_dir, keep_checkpoints=args.keep_checkpoints,
                      overwrite=args.overwrite, unlearnable=UnlearnableConfig.preset(args.preset, **overrides))


def cmd_protect(args) -> int:
    job = protect_job_from_args(args)  # validate settings before starting Ray
    job.resources = _connect(args)
    job.run(progress=say)
    return 0


def cmd_evaluate(args) -> int:
    from raypriv.data import load_corpus
    from raypriv.evaluate import EvaluateConfig, VictimConfig, evaluate_protection, format_table

    victim = VictimConfig(model=args.victim, seed=args.seed,
                          **({"epochs": args.epochs} if args.epochs else {}))
    partial = tuple(float(x) for x in args.partial.split(",") if x.strip())
    config = EvaluateConfig(victim=victim, defenses=tuple(d for d in args.defenses.split(",") if d), partial=partial)
    resources = _connect(args)
    clean = load_corpus(args.clean, split="train")
    test = load_corpus(args.clean, split=args.test_split)
    protected = load_corpus(f"parquet:{args.protected}")
    report = evaluate_protection(clean=clean, protected=protected, test=test, config=config, resources=resources,
                                 out_dir=args.output, progress=say)
    say(format_table(report))
    say(f"report: {args.output}/report.json, images: {args.output}/grid.png")
    return 0


def cmd_demo(args) -> int:
    from raypriv.demo import run_demo

    resources = _connect(args)
    run_demo(output=args.output, resources=resources, progress=say)
    return 0


def cmd_synth(args) -> int:
    from raypriv.synth.cli import cmd_synth as run

    return run(args, connect=_connect, say=say)


def cmd_dpvae(args) -> int:
    from raypriv.dpvae.cli import cmd_dpvae as run

    return run(args, connect=_connect, say=say)


COMMANDS = {"datasets": cmd_datasets, "protect": cmd_protect, "evaluate": cmd_evaluate, "synth": cmd_synth,
            "dpvae": cmd_dpvae, "demo": cmd_demo}


def main(argv: list[str] | None = None) -> int:
    """Run one command; an error prints one line (the traceback too with ``--verbose``)."""
    args = get_args_parser().parse_args(argv)
    from raypriv.runtime.execute import run_entry_point

    return run_entry_point(lambda: COMMANDS[args.command](args), name="raypriv",
                           verbose=bool(getattr(args, "verbose", False)))


if __name__ == "__main__":
    sys.exit(main())
