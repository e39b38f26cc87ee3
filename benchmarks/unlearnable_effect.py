"""Does the protection work? Clean vs protected victim test accuracy, through the Ray path.

    python benchmarks/unlearnable_effect.py --dataset cifar10-subset --modes classwise,samplewise \\
        --eps 8 --preset strong --victim-epochs 30
    python benchmarks/unlearnable_effect.py --dataset mnist5k --modes samplewise,classwise \\
        --eps 16 --preset restart --victim-epochs 10
    python benchmarks/unlearnable_effect.py --dataset mnist5k --modes samplewise,classwise \\
        --eps 8,16,32 --preset reference --set surrogate=small_cnn --victim-epochs 10

For each (mode, ε) it runs `protect` (Ray Data actor pool) and trains a fresh victim
(Ray Train) on the protected training set; one clean victim gives the baseline. The held-out
set is always clean. By default (``--holdout validation``) it is a validation split cut from
the training data (20 %, by id hash), where presets and budgets are compared and chosen;
``--holdout test`` trains on the full training split and measures on the test split
(mnist5k's fixed test split; for the CIFAR-10 subset the 761 images of data_batch_5), to be
run once, for the settings chosen on validation.
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
    p.add_argument("--modes", default="samplewise,classwise")
    p.add_argument("--eps", default="8", help="comma list of budgets in 8-bit levels")
    p.add_argument("--preset", default="strong")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a noise setting")
    p.add_argument("--victim", default="small_cnn")
    p.add_argument("--victim-epochs", type=int, default=15)
    p.add_argument("--victim-lr", type=float, default=0.1)
    p.add_argument("--no-augment", action="store_true", help="train victims without augmentation")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--out", default="bench-out/effect")
    p.add_argument("--skip-clean", action="store_true")
    add_holdout_args(p)
    return p


def _overrides(items):
    from raypriv.jobs.entry import parse_yaml

    return {k: parse_yaml(v) for k, _, v in (s.partition("=") for s in items)}


def main(args) -> dict:
    from common import evaluation_split, save_result
    from raypriv.data import load_corpus
    from raypriv.classifier import VictimConfig
    from raypriv.classifier.train import train_victim
    from raypriv.runtime import ResourceSpec, init_ray
    from raypriv.unlearnable import UnlearnableConfig, protect

    init_ray(num_cpus=4)
    train, test = evaluation_split(args.dataset, args)
    res = ResourceSpec(workers=args.workers)
    victim = VictimConfig(model=args.victim, epochs=args.victim_epochs, lr=args.victim_lr,
                          augment=not args.no_augment)
    runs = os.path.join(args.out, "runs")
    out = {"dataset": args.dataset, "holdout": args.holdout, "train_rows": train.info.num_rows,
           "held_out_rows": test.info.num_rows,
           "victim": victim.__dict__, "preset": args.preset, "overrides": _overrides(args.set), "rows": []}
    saved = None  # results are rewritten after every row, so a long sweep cut short keeps what it measured
    if not args.skip_clean:
        t0 = time.time()
        out["clean_acc"] = train_victim(train, test, config=victim, resources=res, storage_path=runs).test_acc
        print(f"clean victim: {args.holdout} accuracy {out['clean_acc']:.2%} ({time.time() - t0:.0f}s)", flush=True)
    for mode in args.modes.split(","):
        for e in (int(x) for x in args.eps.split(",")):
            cfg = UnlearnableConfig.preset(args.preset, **{"mode": mode, "epsilon": e / 255, "step_size": e / 2550,
                                                          **_overrides(args.set)})
            path = os.path.join(args.out, f"{args.dataset}-{args.holdout}-{args.preset}-{mode}-{e}")
            t0 = time.time()
            pr = protect(train, output=path, config=cfg, resources=res, overwrite=True,
                         progress=lambda m: print("   ", m, flush=True))
            t1 = time.time()
            acc = train_victim(load_corpus(f"parquet:{path}"), test, config=victim, resources=res,
                               storage_path=runs).test_acc
            row = {"mode": mode, "eps_255": e, "rounds": pr.manifest["rounds"], "protected_acc": acc,
                   "protect_s": t1 - t0, "victim_s": time.time() - t1, "stop_reason": pr.manifest["stop_reason"]}
            out["rows"].append(row)
            print(f"{args.dataset} {mode:<10} eps={e:>2}/255 preset={args.preset}: protected victim {acc:.2%} "
                  f"(clean {out.get('clean_acc', float('nan')):.2%}) on {args.holdout}, {row['rounds']} rounds, "
                  f"protect {row['protect_s']:.0f}s", flush=True)
            saved = save_result("unlearnable_effect", out, path=saved)
    print(f"results: {save_result('unlearnable_effect', out, path=saved)}")
    return out


if __name__ == "__main__":
    main(get_args_parser().parse_args())
