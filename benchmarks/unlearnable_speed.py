"""Noise-generation throughput: the Ray Data actor-pool PGD pass vs a plain PyTorch loop.

    python benchmarks/unlearnable_speed.py [--n 4000] [--size 32] [--steps 10]

Measures images × PGD steps per second over the same images and surrogate on this
machine's cores: (a) one process, torch using every core; (b) the Ray path with 1 and 2
actors (one thread each), including actor start-up. Prints the ratios.
"""
from __future__ import annotations

import argparse
import os
import time


def get_args_parser():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=4000)
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--model", default="small_cnn")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--workers", default="1,2")
    return p


def single_process(corpus, payload, args, threads: int) -> float:
    import numpy as np
    import torch

    from raypriv.unlearnable.pgd import min_min_pgd, to_float
    from raypriv.models import build_from_payload

    torch.set_num_threads(threads)
    model = build_from_payload(payload, torch.device("cpu")).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    batches = list(corpus.ds.iter_batches(batch_size=args.batch_size, batch_format="numpy"))
    warm = batches[0]
    min_min_pgd(model, to_float(warm["image"], "cpu"), torch.as_tensor(warm["label"]).long(),
                torch.zeros(warm["image"].shape, dtype=torch.float32).permute(0, 3, 1, 2), epsilon=8 / 255,
                step_size=0.8 / 255, steps=1)
    t0 = time.perf_counter()
    for b in batches:
        x = to_float(b["image"], "cpu")
        noise = torch.as_tensor(np.zeros_like(b["image"], dtype=np.float32)).permute(0, 3, 1, 2)
        min_min_pgd(model, x, torch.as_tensor(b["label"]).long(), noise, epsilon=8 / 255, step_size=0.8 / 255,
                    steps=args.steps)
    return args.n * args.steps / (time.perf_counter() - t0)


def ray_path(corpus, payload, args, workers: int) -> float:
    import numpy as np

    from raypriv.runtime import ResourceSpec
    from raypriv.unlearnable import UnlearnableConfig
    from raypriv.unlearnable.generator import pgd_pass

    cfg = UnlearnableConfig(mode="samplewise", pgd_steps=args.steps, pgd_batch_size=args.batch_size)
    work = corpus.ds.map_batches(
        lambda b: {**b, "noise": np.zeros(b["image"].shape, np.float32)}, batch_format="numpy").materialize()
    t0 = time.perf_counter()
    pgd_pass(work, payload, cfg, ResourceSpec(workers=workers), task="pgd").materialize()
    return args.n * args.steps / (time.perf_counter() - t0)


def main(args) -> dict:
    import ray
    import torch

    from common import save_result, synthetic_corpus
    from raypriv.models import build_model
    from raypriv.runtime import init_ray

    init_ray(num_cpus=os.cpu_count())
    corpus = synthetic_corpus(args.n, size=args.size)
    torch.manual_seed(0)
    model = build_model(args.model, in_channels=3, num_classes=10, image_size=args.size)
    payload = {"model": args.model, "model_kwargs": dict(in_channels=3, num_classes=10, image_size=args.size),
               "state": model.state_dict()}
    res = {"n": args.n, "size": args.size, "steps": args.steps, "model": args.model, "cores": os.cpu_count()}
    workers = [int(x) for x in args.workers.split(",")]
    res["single_process_1_thread"] = single_process(corpus, payload, args, 1)
    res["single_process"] = single_process(corpus, payload, args, os.cpu_count())
    for w in workers:
        res[f"ray_{w}_workers"] = ray_path(corpus, payload, args, w)
    print(f"PGD throughput, {args.n} images {args.size}x{args.size}x3, {args.model}, {args.steps} steps "
          f"({os.cpu_count()} cores), images x steps / s:")
    print(f"  single process (torch, 1 thread):   {res['single_process_1_thread']:8.1f}")
    print(f"  single process (torch, {os.cpu_count()} threads):  {res['single_process']:8.1f}")
    for w in workers:
        r = res[f"ray_{w}_workers"]
        print(f"  Ray Data actor pool, {w} worker(s):  {r:8.1f}   ratio vs single process {r / res['single_process']:.2f}")
    if 1 in workers and len(workers) > 1:
        w = max(workers)
        res["efficiency_1_to_max"] = res[f"ray_{w}_workers"] / (w * res["ray_1_workers"])
        print(f"  1 -> {w} workers efficiency: {res['efficiency_1_to_max']:.2f} (throughput / ({w} x one worker's))")
    print(f"results: {save_result('unlearnable_speed', res)}")
    ray.shutdown()
    return res


if __name__ == "__main__":
    main(get_args_parser().parse_args())
