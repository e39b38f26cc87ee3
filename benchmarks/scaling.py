"""1 → 2 worker efficiency of the pool passes and the Ray Train job not covered elsewhere.

    python benchmarks/scaling.py [--parts stats,features,nearest,classifier] [--epochs 3]

On ``mnist5k`` (4,000 training images), side by side in one run, each part with 1 then 2
workers: the class-wise BN-statistics pass (``raypriv.synth.stats``), the classifier-feature
pass (``raypriv.dpvae.report.features``), the nearest-real search (``raypriv.synth.report``,
500 synthetic images against the training set) and the classifier recipe
(``raypriv.classifier.train``, Ray Train, ``--epochs`` epochs). Efficiency is throughput with 2
workers / (2 × with 1); each timing includes actor (or worker group) start-up, as a user sees it.
The PGD pass, synthetic-image optimization and DP-VAE training have their own scripts
(``unlearnable_speed.py``, ``synth_speed.py``, ``dpvae_speed.py``).
"""
from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

PARTS = ("stats", "features", "nearest", "classifier")


def get_args_parser():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--parts", default=",".join(PARTS))
    p.add_argument("--epochs", type=int, default=3, help="classifier epochs")
    p.add_argument("--repeat", type=int, default=1, help="runs per (part, workers); the best is kept")
    return p


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main(args) -> dict:
    import numpy as np
    import torch

    from common import load_benchmark_corpus, save_result
    from raypriv.classifier import VictimConfig
    from raypriv.classifier.train import train_victim
    from raypriv.dpvae.report import features
    from raypriv.models import ModelPayload, build_model
    from raypriv.runtime import ResourceSpec, init_ray
    from raypriv.synth.report import nearest_real
    from raypriv.synth.stats import compute_class_stats
    from raypriv.synth.teacher import Teacher

    init_ray(num_cpus=4)
    train, test = load_benchmark_corpus("mnist5k")
    train = type(train)(ds=train.ds.materialize(), info=train.info)
    n = train.info.num_rows
    torch.manual_seed(0)
    kwargs = ModelPayload.image_kwargs(train.info.image_shape, train.info.num_classes)
    net = build_model("small_cnn", **kwargs)
    payload = ModelPayload(model="small_cnn", model_kwargs=kwargs, state=net.state_dict())
    teacher = Teacher(model="small_cnn", model_kwargs=kwargs, state=net.state_dict(), manifest={})
    synth = np.asarray([r["image"] for r in test.ds.take(500)], dtype=np.uint8)
    runs = os.path.abspath("bench-out/scaling-runs")
    work = {
        "stats": (lambda r: compute_class_stats(train, teacher, resources=r, progress=lambda m: None), n, "images/s"),
        "features": (lambda r: features(payload, train, resources=r), n, "images/s"),
        "nearest": (lambda r: nearest_real(synth, train, resources=r), n * len(synth), "pairs/s"),
        "classifier": (lambda r: train_victim(train, test, config=VictimConfig(epochs=args.epochs), resources=r,
                                              storage_path=runs), n * args.epochs, "images/s"),
    }
    out: dict = {"dataset": "mnist5k", "rows": n, "cores": os.cpu_count(), "parts": {}}
    for part in args.parts.split(","):
        fn, amount, unit = work[part]
        rates = {w: amount / min(_timed(lambda: fn(ResourceSpec(workers=w))) for _ in range(args.repeat))
                 for w in (1, 2)}
        eff = rates[2] / (2 * rates[1])
        out["parts"][part] = {"unit": unit, "1_worker": rates[1], "2_workers": rates[2], "efficiency": eff}
        print(f"{part:<11} 1 worker {rates[1]:10.1f} {unit}   2 workers {rates[2]:10.1f}   efficiency {eff:.2f}",
              flush=True)
    print(f"results: {save_result('scaling', out)}")
    return out


if __name__ == "__main__":
    main(get_args_parser().parse_args())
