"""Synthetic data from class-wise BN statistics: utility vs real data, class-wise vs global
statistics, nearest-real SSIM and membership inference, through the Ray path.

    python benchmarks/synth_utility.py --dataset mnist5k --ipc 10,50,100 --teacher-epochs 10 --victim-epochs 10
    python benchmarks/synth_utility.py --dataset cifar10-subset --ipc 10,50 --set bn=3 --teacher-epochs 30 --victim-epochs 30

Steps: a teacher (Ray Train) on the real training split; class-wise statistics (Ray Data);
for each statistics kind, ``max(ipc)`` images per class (Ray Data actor pool); then
``evaluate_synthetic`` (victims on the first k per class for every k, and on the real set;
nearest-real search; loss-threshold MIA against the synthetic- and the real-trained model).
The held-out set is always real. By default (``--holdout validation``) it is a validation
split cut from the training data (20 %, by id hash): the teacher, statistics and synthetic
images come from the rest, and settings are compared and chosen there; ``--holdout test``
uses the full training split and measures on the test split (mnist5k's fixed test split; for
the CIFAR-10 subset the 761 images of data_batch_5), once, for the settings chosen.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import add_holdout_args  # noqa: E402


def get_args_parser():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dataset", default="mnist5k", choices=["mnist5k", "digits", "cifar10-subset"])
    p.add_argument("--ipc", default="10,50", help="comma list of images per class to train on")
    p.add_argument("--statistics", default="classwise,global")
    p.add_argument("--iterations", type=int, default=300)
    p.add_argument("--batch-size", type=int, default=50)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a generation setting")
    p.add_argument("--teacher", default="small_cnn")
    p.add_argument("--teacher-epochs", type=int, default=15)
    p.add_argument("--victim-epochs", type=int, default=15)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--no-mia", action="store_true")
    p.add_argument("--labels", default="hard", choices=["hard", "teacher"],
                   help="synthetic-set victims learn class labels or the teacher's soft labels (distillation)")
    p.add_argument("--reuse", action="store_true",
                   help="reuse a synthetic set already generated in --out with the same settings")
    p.add_argument("--out", default="bench-out/synth")
    add_holdout_args(p)
    return p


def main(args) -> dict:
    from raypriv.jobs.entry import parse_yaml
    from common import evaluation_split, save_result

    from raypriv.classifier import VictimConfig
    from raypriv.data import load_corpus
    from raypriv.runtime import ResourceSpec, init_ray
    from raypriv.synth import (SynthConfig, SynthEvalConfig, compute_class_stats, evaluate_synthetic, format_table,
                               generate, load_teacher, train_teacher)

    init_ray(num_cpus=4)
    say = lambda m: print(m, flush=True)  # noqa: E731
    train, test = evaluation_split(args.dataset, args)
    res = ResourceSpec(workers=args.workers)
    ipc = tuple(int(k) for k in args.ipc.split(","))
    root = os.path.join(args.out, f"{args.dataset}-{args.holdout}")
    teacher_dir = os.path.join(root, "teacher")
    t0 = time.time()
    if os.path.exists(os.path.join(teacher_dir, "manifest.json")):
        teacher = load_teacher(teacher_dir)
        say(f"reusing teacher {teacher_dir} (test accuracy {teacher.manifest['test_acc']:.2%})")
    else:
        teacher = train_teacher(train, test, output=teacher_dir, resources=res, progress=say,
                                config=VictimConfig(model=args.teacher, epochs=args.teacher_epochs))
    stats = compute_class_stats(train, teacher, resources=res, progress=say)
    out = {"dataset": args.dataset, "holdout": args.holdout, "train_rows": train.info.num_rows,
           "held_out_rows": test.info.num_rows,
           "teacher_test_acc": teacher.manifest["test_acc"], "ipc": ipc, "runs": []}
    saved = None
    overrides = {k: parse_yaml(v) for k, _, v in (s.partition("=") for s in args.set)}
    for kind in args.statistics.split(","):
        cfg = SynthConfig(images_per_class=max(ipc), batch_size=min(args.batch_size, max(ipc)),
                          iterations=args.iterations, statistics=kind, **overrides)
        t1 = time.time()
        path = os.path.join(root, f"synth-{kind}")
        if args.reuse and _same_settings(path, cfg):
            say(f"reusing {path}")
        else:
            generate(teacher, stats, output=path, config=cfg, resources=res, overwrite=True, progress=say)
        gen_s = time.time() - t1
        report = evaluate_synthetic(
            synthetic=load_corpus(f"parquet:{path}"), real_train=train, real_test=test, resources=res,
            config=SynthEvalConfig(victim=VictimConfig(epochs=args.victim_epochs), images_per_class=ipc,
                                   mia=not args.no_mia, labels=args.labels),
            out_dir=os.path.join(root, f"eval-{kind}-{args.labels}"), progress=say, teacher=teacher)
        say(f"--- {args.dataset}, {kind} statistics ({cfg.iterations} iterations, generation {gen_s:.0f}s)")
        say(format_table(report))
        out["runs"].append({"statistics": kind, "labels": args.labels, "config": cfg.to_dict(), "generation_s": gen_s,
                            "utility": report["utility"], "nearest_real": report["nearest_real"],
                            "membership_inference": report.get("membership_inference")})
        saved = save_result("synth_utility", out, path=saved)
    out["wall_s"] = time.time() - t0
    print(f"results: {save_result('synth_utility', out, path=saved)}")
    return out


def _same_settings(path: str, cfg) -> bool:
    """Whether ``path`` holds a finished synthetic set generated with exactly ``cfg``."""
    import json

    try:
        with open(os.path.join(path, "manifest.json")) as f:
            return json.load(f)["params"] == cfg.to_dict()
    except (OSError, KeyError, ValueError):
        return False


if __name__ == "__main__":
    main(get_args_parser().parse_args())
