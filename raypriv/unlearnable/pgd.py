"""Error-minimizing PGD: the inner step of min-min noise, in plain PyTorch.

Images are float tensors in [0, 1] shaped N×C×H×W; ``noise`` has the same shape.
The surrogate must be in eval mode with frozen weights: BatchNorm then treats each
image independently, so a sample's result does not depend on the batch it is in.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def min_min_pgd(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, noise: torch.Tensor, *,
                epsilon: float, step_size: float, steps: int) -> torch.Tensor:
    """Run ``steps`` signed-gradient steps that *descend* the cross-entropy and return the new noise.

    As in Huang et al. (2021): ``x' = clip(x + δ, 0, 1)``; ``x' ← x' − α·sign(∇ℓ)``;
    ``δ ← clip(x' − x, −ε, ε)``. The returned noise keeps both signs (it is never
    clipped to [0, 1] on its own) and satisfies ``|δ| ≤ ε`` element-wise.
    """
    delta = noise.detach().clamp(-epsilon, epsilon)
    for _ in range(steps):
        x_adv = (images + delta).clamp(0, 1).requires_grad_(True)
        # Summed loss: the sign of each image's gradient does not depend on the batch size.
        loss = F.cross_entropy(model(x_adv), labels, reduction="sum")
        (grad,) = torch.autograd.grad(loss, x_adv)
        x_adv = x_adv.detach() - step_size * grad.sign()
        delta = (x_adv - images).clamp(-epsilon, epsilon)
    return delta.detach()


@torch.no_grad()
def per_sample_loss(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor):
    """(cross-entropy per image as float64, correct-prediction flags) of ``model`` (eval mode)."""
    logits = model(images)
    return F.cross_entropy(logits, labels, reduction="none").double(), logits.argmax(dim=1) == labels


def to_float(images_uint8, device) -> torch.Tensor:
    """N×H×W×C uint8 (numpy or tensor) → N×C×H×W float in [0, 1] (:func:`raypriv.models.to_float_nchw`)."""
    from raypriv.models import to_float_nchw

    return to_float_nchw(images_uint8, device)


def release(images_uint8, noise_nhwc):
    """Apply noise (N×H×W×C float, [0,1] scale) to uint8 images and quantize back to uint8.

    ``|released − original| ≤ round(ε·255)`` holds because the noise is bounded by ε."""
    import numpy as np

    out = np.rint(images_uint8.astype(np.float32) + noise_nhwc.astype(np.float32) * 255.0)
    return np.clip(out, 0, 255).astype(np.uint8)
