"""The numerical cores that raypriv's GPU actors run, on CUDA vs the CPU, without Ray.

    python benchmarks/gpu_kernels.py --image-size 32 --channels 3 --batch 128

Runs the error-minimizing PGD step (unlearnable examples, ``min_min_pgd``) and one
synthetic-image batch optimization (``synthesize_batch``) on every device present, checks
that the GPU result agrees with the CPU one (same PGD noise up to float error, a BN-matching
loss that falls as far), and prints throughput. Needs only torch: it is meant for a GPU
machine where Ray is not installed; the Ray actors add no arithmetic to these functions.
"""
from __future__ import annotations

import argparse
import json
import time


def get_args_parser():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--image-size", type=int, default=32)
    p.add_argument("--channels", type=int, default=3)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--model", default="small_cnn")
    p.add_argument("--pgd-steps", type=int, default=20)
    p.add_argument("--synth-iterations", type=int, default=200)
    p.add_argument("--repeats", type=int, default=3)
    return p


def _sync(device):
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize()


def pgd_case(model, x, y, device, args) -> tuple:
    import torch

    from raypriv.unlearnable.pgd import min_min_pgd

    m = model.to(device).eval()
    xd, yd = x.to(device), y.to(device)
    noise = torch.zeros_like(xd)
    kw = dict(epsilon=8 / 255, step_size=0.8 / 255, steps=args.pgd_steps)
    min_min_pgd(m, xd, yd, noise, **kw)          # warm-up (cuDNN autotune, allocator)
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(args.repeats):
        delta = min_min_pgd(m, xd, yd, noise, **kw)
    _sync(device)
    secs = (time.perf_counter() - t0) / args.repeats
    return len(x) * args.pgd_steps / secs, delta.cpu()


def synth_case(model, targets, device, args) -> tuple[float, dict]:
    from raypriv.synth.config import SynthConfig
    from raypriv.synth.inversion import BNStatLoss, synthesize_batch

    m = model.to(device).eval()
    for p in m.parameters():
        p.requires_grad_(False)
    loss = BNStatLoss(m, first_bn_weight=10.0)
    cfg = SynthConfig(images_per_class=args.batch, batch_size=args.batch, iterations=args.synth_iterations)
    shape = (args.image_size, args.image_size, args.channels)
    synthesize_batch(m, loss, label=0, n=args.batch, image_shape=shape, targets=targets, config=cfg, seed=1,
                     device=device)          # warm-up
    _sync(device)
    t0 = time.perf_counter()
    _, info = synthesize_batch(m, loss, label=0, n=args.batch, image_shape=shape, targets=targets, config=cfg,
                               seed=1, device=device)
    _sync(device)
    loss.remove()
    return args.batch * args.synth_iterations / (time.perf_counter() - t0), info


def main(args) -> dict:
    import copy

    import torch

    from raypriv.models import build_model
    from raypriv.synth.stats import BNInputRecorder

    torch.manual_seed(0)
    c, s = args.channels, args.image_size
    model = build_model(args.model, in_channels=c, num_classes=10, image_size=s)
    x = torch.rand(args.batch, c, s, s)
    y = torch.randint(0, 10, (args.batch,))
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    out = {"devices": [str(d) for d in devices], "cuda": torch.cuda.get_device_name(0) if len(devices) > 1 else None,
           "torch": torch.__version__, "cpu_threads": torch.get_num_threads(), "batch": args.batch,
           "image_shape": [s, s, c], "model": args.model}
    # The BN-input statistics of class y[0]'s images: the targets the synthesis case pushes towards.
    rec = BNInputRecorder(model.eval())
    with torch.no_grad():
        model(x)
    rec.remove()
    rows = y == y[0]
    targets = [(t[rows].mean(dim=(0, 2, 3)).numpy(), t[rows].transpose(0, 1).flatten(1).var(1, unbiased=False).numpy())
               for t in rec.inputs]
    deltas = {}
    for d in devices:
        rate, deltas[str(d)] = pgd_case(copy.deepcopy(model), x, y, d, args)
        out[f"pgd_{d.type}_image_steps_per_s"] = rate
        rate, info = synth_case(copy.deepcopy(model), targets, d, args)
        out[f"synth_{d.type}_image_iterations_per_s"] = rate
        out[f"synth_{d.type}_kept_loss"] = info
        print(f"{d.type}: PGD {out[f'pgd_{d.type}_image_steps_per_s']:,.0f} image·steps/s; "
              f"synthesis {rate:,.0f} image·iterations/s (kept BN loss {info['bn']:.4f})", flush=True)
    if "cuda" in deltas:
        diff = (deltas["cuda"] - deltas["cpu"]).abs()
        out["pgd_cuda_vs_cpu_max_abs_diff"] = float(diff.max())
        out["pgd_cuda_vs_cpu_frac_differing"] = float((diff > 1e-6).float().mean())
        for k in ("pgd", "synth"):
            unit = "image_steps_per_s" if k == "pgd" else "image_iterations_per_s"
            out[f"{k}_speedup"] = out[f"{k}_cuda_{unit}"] / out[f"{k}_cpu_{unit}"]
        print(f"GPU vs CPU: PGD {out['pgd_speedup']:.1f}x, synthesis {out['synth_speedup']:.1f}x; PGD noise "
              f"max |Δ| {out['pgd_cuda_vs_cpu_max_abs_diff']:.2e} "
              f"({out['pgd_cuda_vs_cpu_frac_differing']:.2%} of entries differ by > 1e-6)", flush=True)
    print(json.dumps(out, default=str))
    return out


if __name__ == "__main__":
    main(get_args_parser().parse_args())
