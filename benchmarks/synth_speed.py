"""Generation throughput (images × iterations per second): the Ray path with 1 and 2 actors
vs a plain single-process loop over the same tasks on the same cores, in one run.

    python benchmarks/synth_speed.py --dataset mnist5k --tasks 8 --batch-size 50 --iterations 100

The teacher is a small_cnn with random weights whose BN statistics are recorded on the data
(throughput does not depend on how well the teacher is trained).
"""
from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def get_args_parser():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dataset", default="mnist5k", choices=["mnist5k", "digits", "cifar10-subset"])
    p.add_argument("--tasks", type=int, default=8, help="generation tasks (batches); spread over classes")
    p.add_argument("--batch-size", type=int, default=50)
    p.add_argument("--iterations", type=int, default=100)
    p.add_argument("--threads", type=int, default=2, help="torch threads of the single-process loop")
    p.add_argument("--out", default="bench-out/synth-speed")
    return p


def single_process(teacher, stats, cfg, tasks, threads: int) -> float:
    import torch

    from raypriv.synth.inversion import BNStatLoss, synthesize_batch

    torch.set_num_threads(threads)
    net = teacher.build().eval()
    for p in net.parameters():
        p.requires_grad_(False)
    loss = BNStatLoss(net, first_bn_weight=cfg.first_bn_weight)
    t0 = time.perf_counter()
    for t in tasks:
        synthesize_batch(net, loss, label=t["label"], n=t["n"], image_shape=teacher.image_shape,
                         targets=stats.targets(t["label"]), config=cfg, seed=t["seed"], device="cpu")
    return time.perf_counter() - t0


def main(args) -> dict:
    from common import load_benchmark_corpus, save_result

    from raypriv.runtime import ResourceSpec, init_ray
    from raypriv.synth import SynthConfig, Teacher, compute_class_stats
    from raypriv.synth.generation import generation_tasks
    from raypriv.models import build_model

    init_ray(num_cpus=4)
    train, _ = load_benchmark_corpus(args.dataset)
    h, _, c = train.info.image_shape
    kw = {"in_channels": c, "num_classes": train.info.num_classes, "image_size": h}
    net = build_model("small_cnn", **kw)
    teacher = Teacher(model="small_cnn", model_kwargs=kw, state=net.state_dict(), manifest={})
    stats = compute_class_stats(train, teacher, resources=ResourceSpec(workers=2), progress=lambda m: None)
    per_class = -(-args.tasks // train.info.num_classes)
    cfg = SynthConfig(images_per_class=per_class * args.batch_size, batch_size=args.batch_size,
                      iterations=args.iterations)
    tasks = [t for t in generation_tasks(train.info.num_classes, cfg) if t["batch_index"] < per_class][: args.tasks]
    work = sum(t["n"] for t in tasks) * args.iterations
    out = {"dataset": args.dataset, "tasks": len(tasks), "batch_size": args.batch_size,
           "iterations": args.iterations, "image_iterations": work}
    secs = single_process(teacher, stats, cfg, tasks, args.threads)
    out["single_process"] = work / secs
    print(f"single process ({args.threads} threads): {work / secs:,.1f} image·iterations/s ({secs:.1f}s)", flush=True)
    for workers in (1, 2):
        t0 = time.perf_counter()
        _generate_tasks(teacher, stats, cfg, tasks, workers=workers, out_dir=os.path.join(args.out, f"w{workers}"))
        secs = time.perf_counter() - t0
        out[f"ray_{workers}_workers"] = work / secs
        print(f"Ray, {workers} worker(s): {work / secs:,.1f} image·iterations/s ({secs:.1f}s, "
              f"{work / secs / out['single_process']:.2f}x single process)", flush=True)
    print(f"results: {save_result('synth_speed', out)}")
    return out


def _generate_tasks(teacher, stats, cfg, tasks, *, workers: int, out_dir: str) -> None:
    """The Ray path of :func:`raypriv.synth.generation` (actor pool + staging) on exactly ``tasks``."""
    import shutil

    from raypriv.runtime import ResourceSpec
    from raypriv.synth.generation import _open_staging, _plan, _run_tasks

    shutil.rmtree(out_dir, ignore_errors=True)
    _open_staging(out_dir, _plan(teacher, stats, cfg))
    _run_tasks(tasks, teacher=teacher, stats=stats, config=cfg, staging=out_dir,
               resources=ResourceSpec(workers=workers), progress=lambda m: None, total=len(tasks), already=0)


if __name__ == "__main__":
    main(get_args_parser().parse_args())
