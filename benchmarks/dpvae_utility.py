"""DP²-VAE vs the end-to-end DP-SGD baseline vs non-private, through the Ray path.

    python benchmarks/dpvae_utility.py --eps 1,10 --seeds 0,1,2
    python benchmarks/dpvae_utility.py --eps 10 --seeds 0 --methods dp2 --set budget_split=0.3   # one setting
    python benchmarks/dpvae_utility.py --eps 10 --reuse --victim-seeds 0,1,2   # re-score the same samples

For every (method, ε, seed): ``train_dpvae`` (Ray Train, ``--workers`` workers), ``sample_dpvae``
(``--ipc`` images per class), then ``evaluate_dpvae``: a fresh classifier trained only on the
samples, tested on the real test split, and the Fréchet distance in the feature space of a
classifier trained on the real training split (not Inception-FID; that reference classifier is
trained once and shared). With ``--victim-seeds`` the downstream classifier is trained once per
seed and its accuracies averaged (the classifier's own seed moves a score by a point or two);
``--reuse`` keeps trained models and samples already in ``--out`` and only re-scores them.
Nothing is selected on the test set. Prints a table of means over seeds.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def get_args_parser():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dataset", default="mnist5k", choices=["mnist5k", "digits"])
    p.add_argument("--eps", default="1,10", help="comma list of ε")
    p.add_argument("--delta", type=float, default=1e-5)
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--methods", default="dp2,dpsgd,none")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a DPVAEConfig field")
    p.add_argument("--ipc", type=int, default=400, help="synthetic images per class")
    p.add_argument("--victim-epochs", type=int, default=10)
    p.add_argument("--victim-seeds", default="0", help="comma list: one downstream classifier per seed, averaged")
    p.add_argument("--reuse", action="store_true",
                   help="keep a trained model and its samples already in --out (re-score only)")
    p.add_argument("--temperature", type=float, default=None, help="latent scale when sampling (default: "
                                                                     "raypriv.dpvae.sample.DEFAULT_TEMPERATURE)")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--out", default="bench-out/dpvae")
    return p


def main(args) -> dict:
    import shutil

    import numpy as np

    from raypriv.jobs.entry import parse_yaml
    from common import load_benchmark_corpus, save_result

    from raypriv.data import load_corpus
    from raypriv.dpvae import DPVAEConfig, evaluate_dpvae, model_dir, sample_dpvae, train_dpvae
    from raypriv.dpvae.config import default_victim
    from raypriv.dpvae.report import reference_classifier
    from raypriv.dpvae.sample import DEFAULT_TEMPERATURE
    from raypriv.runtime import ResourceSpec, init_ray

    init_ray(num_cpus=4)
    say = lambda m: print(m, flush=True)  # noqa: E731
    train, test = load_benchmark_corpus(args.dataset)
    res = ResourceSpec(workers=args.workers)
    overrides = {k: parse_yaml(v) for k, _, v in (s.partition("=") for s in args.set)}
    temperature = DEFAULT_TEMPERATURE if args.temperature is None else args.temperature
    victim = default_victim(epochs=args.victim_epochs)
    victim_seeds = [int(v) for v in args.victim_seeds.split(",")]
    t0 = time.time()
    ref = reference_classifier(train, test, victim=victim, resources=res, runs=os.path.join(args.out, "runs"),
                               progress=say)
    out = {"dataset": args.dataset, "delta": args.delta, "overrides": overrides, "ipc": args.ipc, "reuse": args.reuse,
           "temperature": temperature, "victim": victim, "real_data_test_acc": ref["test_acc"], "runs": []}
    saved = None
    for method in args.methods.split(","):
        for eps in ([None] if method == "none" else [float(e) for e in args.eps.split(",")]):
            for seed in (int(s) for s in args.seeds.split(",")):
                # the declared (public) size: here the true count, which the benchmark knows
                cfg = DPVAEConfig(method=method, epsilon=eps or 1.0, delta=args.delta, seed=seed,
                                  **{"dataset_size": train.info.num_rows, **overrides})
                name = f"{method}-eps{eps:g}-s{seed}" if eps else f"{method}-s{seed}"
                run_dir = os.path.join(args.out, name)
                t1 = time.time()
                reused = args.reuse and reusable(run_dir, images_per_class=args.ipc, temperature=temperature)
                if not reused:
                    for d in (run_dir, run_dir + "-synth"):
                        shutil.rmtree(d, ignore_errors=True)
                    train_dpvae(train, config=cfg, output=run_dir, resources=res, progress=say)
                    sample_dpvae(run_dir, output=run_dir + "-synth", images_per_class=args.ipc, seed=seed,
                                 temperature=temperature, resources=res, progress=say)
                train_s = None if reused else time.time() - t1
                synthetic = load_corpus(f"parquet:{run_dir}-synth")
                reports = [evaluate_dpvae(synthetic=synthetic, real_train=train, real_test=test,
                                          victim=dataclasses.replace(victim, seed=vs), resources=res,
                                          out_dir=f"{run_dir}-eval" + (f"-v{vs}" if vs else ""),
                                          progress=say, reference=ref)
                           for vs in victim_seeds]
                report = {**reports[0], "downstream_test_acc": float(np.mean([r["downstream_test_acc"]
                                                                              for r in reports]))}
                privacy = json.load(open(os.path.join(model_dir(run_dir), "manifest.json")))["privacy"]
                row = {"method": method, "epsilon": eps, "seed": seed, "train_s": train_s,
                       "victim_seeds": victim_seeds,
                       "downstream_by_victim_seed": [r["downstream_test_acc"] for r in reports],
                       "epsilon_spent": privacy.get("epsilon_spent"),
                       "sigmas": [s["sigma"] for s in privacy.get("stages", [])],
                       "downstream_test_acc": report["downstream_test_acc"],
                       "frechet_distance": report["frechet_distance"],
                       "label_agreement": report["label_agreement"]}
                say(f"=== {name}: downstream {row['downstream_test_acc']:.2%}, FD {row['frechet_distance']:.2f}, "
                    f"ε spent {row['epsilon_spent']}, σ {row['sigmas']}, "
                    + ("reused" if reused else f"train {train_s:.0f}s"))
                out["runs"].append(row)
                saved = save_result("dpvae_utility", out, path=saved)
    out["summary"] = summarize(out["runs"])
    out["wall_s"] = time.time() - t0
    print(format_summary(out))
    print(f"results: {save_result('dpvae_utility', out, path=saved)}")
    return out


def reusable(run_dir: str, *, images_per_class: int, temperature: float) -> bool:
    """A finished model and a finished sample set drawn with these settings (their manifests) are there."""
    from raypriv.dpvae import model_dir

    paths = [os.path.join(d, "manifest.json") for d in (model_dir(run_dir) or run_dir, run_dir + "-synth")]
    if not all(os.path.exists(p) for p in paths):
        return False
    params = json.load(open(paths[1])).get("params", {})
    return params.get("images_per_class") == images_per_class and params.get("temperature") == temperature


def summarize(runs: list[dict]) -> list[dict]:
    import numpy as np

    groups: dict = {}
    for r in runs:
        groups.setdefault((r["method"], r["epsilon"]), []).append(r)
    return [{"method": m, "epsilon": e, "seeds": len(rs),
             "acc_mean": float(np.mean([r["downstream_test_acc"] for r in rs])),
             "acc_std": float(np.std([r["downstream_test_acc"] for r in rs])),
             "fd_mean": float(np.mean([r["frechet_distance"] for r in rs])),
             "agreement_mean": float(np.mean([r["label_agreement"] for r in rs]))}
            for (m, e), rs in groups.items()]


def format_summary(out: dict) -> str:
    lines = [f"real-data classifier: {out['real_data_test_acc']:.2%}",
             f"{'method':<8} {'ε':>5} {'seeds':>5} {'downstream acc':>16} {'Fréchet (clf feats)':>20} "
             f"{'label agreement':>16}"]
    for s in out["summary"]:
        eps = "-" if s["epsilon"] is None else f"{s['epsilon']:g}"
        lines.append(f"{s['method']:<8} {eps:>5} {s['seeds']:>5} {s['acc_mean']:>9.2%} ± {s['acc_std']:.2%} "
                     f"{s['fd_mean']:>20.2f} {s['agreement_mean']:>16.1%}")
    return "\n".join(lines)


if __name__ == "__main__":
    main(get_args_parser().parse_args())
