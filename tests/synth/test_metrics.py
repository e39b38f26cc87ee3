"""Privacy metrics pinned to known values and to independent implementations."""
import numpy as np
import pytest

from raypriv.similarity import psnr, psnr_per_image, ssim, ssim_per_image
from raypriv.synth.metrics import attack_auc


def test_ssim_known_values():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    assert ssim(a, a) == pytest.approx(1.0)
    assert ssim(a, 255 - a) < 0          # anti-correlated structure
    noisy = np.clip(a.astype(int) + rng.integers(-20, 21, a.shape), 0, 255).astype(np.uint8)
    assert 0.5 < ssim(a, noisy) < 1.0
    flat = np.full((8, 8, 1), 100, np.uint8)
    # constant images: SSIM reduces to the luminance term (2·100·110 + C1) / (100² + 110² + C1)
    c1 = (0.01 * 255) ** 2
    assert ssim(flat, flat + 10) == pytest.approx((2 * 100 * 110 + c1) / (100 ** 2 + 110 ** 2 + c1))


def test_psnr_known_values():
    a = np.zeros((4, 4, 1), np.uint8)
    assert psnr(a, a) == 100.0
    assert psnr(a, a + 1) == pytest.approx(10 * np.log10(255 ** 2))   # MSE 1 → 48.13 dB


def test_attack_auc_agrees_with_sklearn_and_counts_tpr_at_low_fpr():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(1)
    members = rng.exponential(0.5, 400)          # members: lower loss
    nonmembers = rng.exponential(1.0, 300)
    res = attack_auc(members=members, nonmembers=nonmembers)
    labels = np.r_[np.ones(400), np.zeros(300)]
    assert res["auc"] == pytest.approx(roc_auc_score(labels, -np.r_[members, nonmembers]))
    thr = np.sort(-nonmembers)[::-1][3]          # 1 % of 300 = 3 non-members may exceed it
    assert res["tpr_at_fpr"] == pytest.approx(np.mean(-members > thr))
    assert attack_auc(members=np.ones(10), nonmembers=np.ones(10))["auc"] == 0.5


def test_per_image_ssim_and_psnr_equal_the_pairwise_ones_and_keep_images_apart():
    rng = np.random.default_rng(2)
    a = rng.integers(0, 256, (5, 12, 10, 3), dtype=np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-30, 31, a.shape), 0, 255).astype(np.uint8)
    b[2] = a[2]                                              # one identical pair among noisy ones
    per_ssim, per_psnr = ssim_per_image(a, b), psnr_per_image(a, b)
    assert per_ssim.shape == per_psnr.shape == (5,)
    assert per_ssim[2] == pytest.approx(1.0) and per_psnr[2] == 100.0
    for i in range(5):                                       # no blur across images or channels
        x, y = a[i].astype(np.float64), b[i].astype(np.float64)
        per_channel = [ssim(a[i][..., c:c + 1], b[i][..., c:c + 1]) for c in range(3)]
        assert per_ssim[i] == pytest.approx(np.mean(per_channel), rel=1e-9)
        if i != 2:
            assert per_psnr[i] == pytest.approx(10 * np.log10(255 ** 2 / np.mean((x - y) ** 2)))
    with pytest.raises(ValueError, match="same shape"):
        ssim_per_image(a, b[:, :-1])
