"""DP-SGD cost for the DP-VAE: σ solving time, step time vs non-private (and where it goes),
per-sample-gradient modes, and 1 vs 2 Ray Train workers.

    python benchmarks/dpvae_speed.py                    # all parts
    python benchmarks/dpvae_speed.py --parts solve,step

Parts:
* ``solve``: seconds to solve σ from a target ε for the default mnist5k plan (two stages)
  and a single stage, PRV and RDP, next to Opacus' ``get_noise_multiplier``.
* ``step``: one training step at the expected batch, single process, broken down into the
  batch draw, forward+backward (per-example gradients, or both passes of ghost clipping) and
  clipping + noise + update; non-private and for each per-example gradient mode; for the
  default MLP cVAE, the issue's 784-400-20 MLP cVAE and the conv cVAE.
* ``workers``: per-step time of a real ``train_dpvae`` run with 1 and 2 Ray Train workers,
  from the privacy ledger's per-step timestamps (so Ray start-up is excluded).
"""
from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

N_TRAIN = 4000     # mnist5k's training split
# (label, registered VAE, constructor arguments); the MLP widths are DPVAEConfig.model_width()'s
# (raypriv.dpvae.config.MLP_WIDTH_BY_EPSILON)
ARCHS = [("mlp_cvae 192 (default ε≥3)", "mlp_cvae", {"width": 192}),
         ("mlp_cvae 128 (default ε<3)", "mlp_cvae", {"width": 128}),
         ("MLP cvae 784-400-20", "mlp_cvae", {"width": 400, "latent_dim": 20}),   # the quick baseline
         ("conv cvae", "cvae", {})]


def get_args_parser():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--parts", default="solve,step,workers")
    p.add_argument("--batch-size", type=int, default=None, help="expected batch (default: DPVAEConfig's)")
    p.add_argument("--steps", type=int, default=20, help="timed steps per setting")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--worker-epochs", type=int, default=10)
    return p


def solve_part() -> list[dict]:
    from opacus.accountants.utils import get_noise_multiplier

    from raypriv.dpvae import DPVAEConfig
    from raypriv.privacy.accounting import solve_sigmas

    cfg = DPVAEConfig()
    q, steps = cfg.batch_size / N_TRAIN, int(-(-cfg.epochs * N_TRAIN // cfg.batch_size))
    rows = []
    for eps in (1.0, 10.0):
        for acct in ("prv", "rdp"):
            for stages in (1, 2):
                t = time.perf_counter()
                sig = solve_sigmas(sample_rates=[q] * stages, steps=[steps] * stages, epsilon_target=eps,
                                   delta=1e-5, accountant=acct, budget_split=0.5 if stages == 2 else None)
                rows.append({"what": f"raypriv solve_sigmas, {stages} stage(s)", "accountant": acct, "epsilon": eps,
                             "seconds": time.perf_counter() - t, "sigmas": sig})
            t = time.perf_counter()
            sig = get_noise_multiplier(target_epsilon=eps, target_delta=1e-5, sample_rate=q, steps=steps,
                                       accountant=acct)
            rows.append({"what": "opacus get_noise_multiplier, 1 stage", "accountant": acct, "epsilon": eps,
                         "seconds": time.perf_counter() - t, "sigmas": [sig]})
    for r in rows:
        print(f"  {r['what']:<40} {r['accountant']} ε={r['epsilon']:>4g}: {r['seconds']:6.2f} s  σ={r['sigmas']}",
              flush=True)
    return rows


def _time_steps(model, *, private: bool, mode: str, batch: int, steps: int) -> dict:
    import functools

    import torch

    from raypriv.dpvae.models import elbo_loss
    from raypriv.privacy.dpsgd import StagePlan, StageRunner, poisson_batch

    x = torch.rand(N_TRAIN, 1, 28, 28)
    y = torch.randint(0, 10, (N_TRAIN,))
    plan = StagePlan(name="main", steps=steps, sample_rate=batch / N_TRAIN, sigma=1.0 if private else None,
                     max_grad_norm=1.0, lr=1e-3, private=private)
    runner = StageRunner(model, plan, world_size=1, grad_sample_mode=mode, loss_fn=functools.partial(elbo_loss, beta=1.0))
    runner.attach(global_rows=N_TRAIN)
    gen = torch.Generator().manual_seed(0)
    parts = {"batch draw": 0.0, "forward+backward": 0.0, "clip+noise+update": 0.0}
    for i in range(steps + 2):                      # two warm-up steps
        t0 = time.perf_counter()
        idx = poisson_batch(N_TRAIN, sample_rate=plan.sample_rate, generator=gen)
        xb, yb = x[idx], y[idx]
        t1 = time.perf_counter()
        runner.backward(xb, yb)                     # ghost clipping: both backward passes
        t2 = time.perf_counter()
        runner.apply(len(xb))
        t3 = time.perf_counter()
        if i >= 2:
            parts["batch draw"] += t1 - t0
            parts["forward+backward"] += t2 - t1
            parts["clip+noise+update"] += t3 - t2
    runner.detach()
    per = {k: v / steps for k, v in parts.items()}
    return {"step_s": sum(per.values()), "parts_s": per}


def step_part(args) -> list[dict]:
    import torch

    from raypriv.dpvae.config import GRAD_SAMPLE_MODES
    from raypriv.dpvae.models import build_vae

    torch.set_num_threads(args.threads)
    rows = []
    for arch, name, kwargs in ARCHS:
        def make():
            torch.manual_seed(0)
            return build_vae(name, in_channels=1, image_size=28, num_classes=10, **kwargs)

        base = _time_steps(make(), private=False, mode="hooks", batch=args.batch_size, steps=args.steps)
        rows.append({"arch": arch, "mode": "non-private", **base, "ratio": 1.0})
        for mode in GRAD_SAMPLE_MODES:
            try:
                r = _time_steps(make(), private=True, mode=mode, batch=args.batch_size, steps=args.steps)
            except Exception as e:  # noqa: BLE001 - a mode Opacus cannot run on this model
                rows.append({"arch": arch, "mode": mode, "error": f"{type(e).__name__}: {e}"[:200]})
                continue
            rows.append({"arch": arch, "mode": mode, **r, "ratio": r["step_s"] / base["step_s"]})
    for r in rows:
        if "error" in r:
            print(f"  {r['arch']:<27} {r['mode']:<11} failed: {r['error']}", flush=True)
            continue
        parts = ", ".join(f"{k} {v * 1000:.1f}" for k, v in r["parts_s"].items())
        print(f"  {r['arch']:<27} {r['mode']:<11} {r['step_s'] * 1000:7.1f} ms/step ({r['ratio']:.2f}x)  [{parts} ms]",
              flush=True)
    return rows


def workers_part(args) -> list[dict]:
    import json
    import shutil
    import tempfile

    from common import load_benchmark_corpus

    from raypriv.dpvae import DPVAEConfig, train_dpvae
    from raypriv.runtime import ResourceSpec, init_ray

    init_ray(num_cpus=4)
    train, _ = load_benchmark_corpus("mnist5k")
    rows = []
    for workers in (1, 2):
        out = tempfile.mkdtemp(prefix=f"dpvae-speed-{workers}w-")
        shutil.rmtree(out)
        cfg = DPVAEConfig(method="dpsgd", epsilon=10.0, pretrain_epochs=0, epochs=args.worker_epochs,
                          dataset_size=train.info.num_rows)
        t = time.time()
        train_dpvae(train, config=cfg, output=out, resources=ResourceSpec(workers=workers), progress=lambda m: None)
        wall = time.time() - t
        stamps = [json.loads(line)["t"] for line in open(os.path.join(out, "privacy-ledger.jsonl")).readlines()[1:]]
        per_step = (stamps[-1] - stamps[0]) / (len(stamps) - 1)
        rows.append({"workers": workers, "steps": len(stamps), "step_s": per_step, "wall_s": wall})
        print(f"  {workers} worker(s): {per_step * 1000:.0f} ms/step over {len(stamps)} steps "
              f"(wall {wall:.0f}s incl. Ray Train start)", flush=True)
        shutil.rmtree(out, ignore_errors=True)
    rows.append({"speedup_2_vs_1": rows[0]["step_s"] / rows[1]["step_s"]})
    print(f"  2 vs 1 workers: {rows[-1]['speedup_2_vs_1']:.2f}x per step", flush=True)
    return rows


def main(args) -> dict:
    from common import save_result

    from raypriv.dpvae import DPVAEConfig

    args.batch_size = args.batch_size or DPVAEConfig().batch_size
    parts = args.parts.split(",")
    out: dict = {"batch_size": args.batch_size, "threads": args.threads}
    if "solve" in parts:
        print("σ from target ε (mnist5k default plan):", flush=True)
        out["solve"] = solve_part()
    if "step" in parts:
        print(f"step time at expected batch {args.batch_size}, {args.threads} threads:", flush=True)
        out["step"] = step_part(args)
    if "workers" in parts:
        print("Ray Train workers (train_dpvae, dpsgd):", flush=True)
        out["workers"] = workers_part(args)
    print(f"results: {save_result('dpvae_speed', out)}")
    return out


if __name__ == "__main__":
    main(get_args_parser().parse_args())
