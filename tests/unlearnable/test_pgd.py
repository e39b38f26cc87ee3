"""The PGD inner step and release arithmetic, pinned without Ray."""
import numpy as np
import torch
import torch.nn.functional as F

from raypriv.models import build_model
from raypriv.unlearnable.pgd import min_min_pgd, release


def _setup(name="tiny_cnn"):
    torch.manual_seed(0)
    model = build_model(name, in_channels=1, num_classes=4, image_size=8).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    x = torch.rand(32, 1, 8, 8)
    y = torch.randint(0, 4, (32,))
    return model, x, y


def test_pgd_descends_loss_and_respects_budget():
    model, x, y = _setup()
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 4))  # a model whose loss moves visibly
    eps = 8 / 255
    zero = torch.zeros_like(x)
    delta = min_min_pgd(model, x, y, zero, epsilon=eps, step_size=0.8 / 255, steps=20)
    before = F.cross_entropy(model(x), y).item()
    after = F.cross_entropy(model((x + delta).clamp(0, 1)), y).item()
    assert after < before - 0.05, (before, after)          # error-*minimizing*
    assert delta.abs().max().item() <= eps + 1e-7
    assert (delta > 1e-4).any() and (delta < -1e-4).any()   # both signs survive


def test_pgd_is_per_sample_and_batch_independent():
    model, x, y = _setup()
    kw = dict(epsilon=8 / 255, step_size=0.8 / 255, steps=5)
    full = min_min_pgd(model, x, y, torch.zeros_like(x), **kw)
    half = min_min_pgd(model, x[:16], y[:16], torch.zeros_like(x[:16]), **kw)
    torch.testing.assert_close(full[:16], half, rtol=0, atol=1e-6)
    assert not torch.allclose(full[0], full[1])             # different images get different noise


def test_release_keeps_negative_noise_and_bound():
    img = np.full((2, 4, 4, 1), 128, dtype=np.uint8)
    noise = np.full((2, 4, 4, 1), -8 / 255, dtype=np.float32)
    noise[1] *= -1
    out = release(img, noise)
    assert out.dtype == np.uint8
    assert (out[0] == 120).all() and (out[1] == 136).all()  # negative noise is applied, not dropped
    edge = release(np.array([[[[3]], [[252]]]], dtype=np.uint8), np.array([[[[-8 / 255]], [[8 / 255]]]], np.float32))
    assert edge.ravel().tolist() == [0, 255]                 # clipped to the valid range
