"""Optimizing one batch of images from noise until the teacher's BN statistics match a target.

This is the numerical core, free of Ray: :func:`synthesize_batch` is what each generation
actor runs per task, and what the single-process benchmark loop runs too.
"""
from __future__ import annotations

import math

import numpy as np


class BNStatLoss:
    """Forward hooks that, on every teacher forward, measure ``Σ_l w_l (‖μ_l − μ*_l‖₂ + ‖σ²_l − σ*²_l‖₂)``
    between the batch statistics of each BN layer's input and ``targets`` ``[(mean, var)]``."""

    def __init__(self, model, *, first_bn_weight: float):
        from raypriv.models import bn_layers

        self.first_bn_weight = first_bn_weight
        self.targets: list = []
        self.terms: list = []
        self._handles = [m.register_forward_hook(self._hook) for _, m in bn_layers(model)]

    def set_targets(self, targets, device) -> None:
        import torch

        self.targets = [(torch.as_tensor(m, dtype=torch.float32, device=device),
                         torch.as_tensor(v, dtype=torch.float32, device=device)) for m, v in targets]

    def _hook(self, module, args, output):
        x = args[0]
        i = len(self.terms)
        mean = x.mean(dim=(0, 2, 3))
        var = x.permute(1, 0, 2, 3).reshape(x.shape[1], -1).var(dim=1, unbiased=False)
        tm, tv = self.targets[i]
        self.terms.append((mean - tm).norm(2) + (var - tv).norm(2))

    def pop(self):
        """The weighted loss of the last forward pass (and reset for the next one)."""
        terms, self.terms = self.terms, []
        return sum(t * (self.first_bn_weight if i == 0 else 1.0) for i, t in enumerate(terms))

    def remove(self) -> None:
        for h in self._handles:
            h.remove()


def total_variation(x):
    """Mean absolute (L1) and mean squared (L2) differences between neighbouring pixels."""
    dh = x[:, :, 1:, :] - x[:, :, :-1, :]
    dw = x[:, :, :, 1:] - x[:, :, :, :-1]
    return dh.abs().mean() + dw.abs().mean(), (dh * dh).mean() + (dw * dw).mean()


def lr_at(step: int, *, lr: float, iterations: int, warmup: int) -> float:
    """Linear warm-up over ``warmup`` steps, then cosine decay to 0 at ``iterations``."""
    if step < warmup:
        return lr * (step + 1) / warmup
    return lr * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, iterations - warmup)))


def synthesize_batch(model, bn_loss: BNStatLoss, *, label: int, n: int, image_shape, targets, config, seed: int,
                     device) -> tuple[np.ndarray, dict]:
    """Optimize ``n`` images of class ``label`` (uint8 ``n×H×W×C``) from noise; also return
    ``{"loss", "bn", "ce", "acc"}`` of the kept (lowest-loss) iterate.

    ``model`` is the teacher in eval mode with frozen weights and ``bn_loss`` attached;
    ``targets`` the per-layer ``(mean, var)`` to match. Deterministic given ``seed``."""
    import torch
    import torch.nn.functional as F

    h, w, c = image_shape
    gen = torch.Generator().manual_seed(seed)
    x0 = (0.5 + config.init_std * torch.randn(n, c, h, w, generator=gen)).clamp_(0, 1)
    x = x0.to(device).requires_grad_(True)
    y = torch.full((n,), int(label), dtype=torch.long, device=device)
    flip = config.flip if config.flip is not None else c == 3
    bn_loss.set_targets(targets, device)
    opt = torch.optim.Adam([x], lr=config.lr, betas=(0.5, 0.9), eps=1e-8)
    warmup = int(config.warmup_fraction * config.iterations)
    jit = config.jitter
    shifts = torch.randint(-jit, jit + 1, (config.iterations, 2), generator=gen).tolist() if jit else None
    flips = (torch.rand(config.iterations, generator=gen) < 0.5).tolist() if flip else None
    best = {"loss": math.inf}
    best_x = x.detach().clone()
    for step in range(config.iterations):
        for group in opt.param_groups:
            group["lr"] = lr_at(step, lr=config.lr, iterations=config.iterations, warmup=warmup)
        xj = torch.roll(x, shifts=tuple(shifts[step]), dims=(2, 3)) if jit else x
        if flips and flips[step]:
            xj = xj.flip(3)
        logits = model(xj)
        l_bn = bn_loss.pop()
        l_ce = F.cross_entropy(logits, y)
        tv1, tv2 = total_variation(xj)
        l2 = xj.flatten(1).norm(dim=1).mean()
        loss = config.bn * l_bn + config.ce * l_ce + config.tv_l1 * tv1 + config.tv_l2 * tv2 + config.l2 * l2
        if loss.item() < best["loss"]:  # the iterate that produced this loss, before the update
            best = {"loss": loss.item(), "bn": l_bn.item(), "ce": l_ce.item(),
                    "acc": (logits.argmax(1) == y).float().mean().item()}
            best_x = x.detach().clone()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            x.clamp_(0, 1)
    images = (best_x.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    return images, best
