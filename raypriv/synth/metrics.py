"""Privacy measurements of a synthetic set: image similarity and membership-inference scores.

>>> import numpy as np
>>> from raypriv.synth.metrics import attack_auc, psnr, ssim
>>> a = np.zeros((8, 8, 1), np.uint8)
>>> round(ssim(a, a), 6), psnr(a, a)
(1.0, 100.0)
>>> attack_auc(members=np.array([0.1, 0.2]), nonmembers=np.array([0.3, 0.4]))["auc"]
1.0
"""
from __future__ import annotations

import numpy as np

PSNR_CAP_DB = 100.0  # reported for identical images (MSE = 0)


def ssim(a: np.ndarray, b: np.ndarray, *, sigma: float = 1.5) -> float:
    """Structural similarity of two uint8 ``H×W×C`` images (Wang et al. 2004).

    Gaussian window (σ = 1.5, reflect padding, so it also works on 8×8 images), constants
    ``(0.01·255)²`` and ``(0.03·255)²``, averaged over all pixels and channels."""
    from scipy.ndimage import gaussian_filter

    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    x, y = a.astype(np.float64), b.astype(np.float64)
    vals = []
    for ch in range(x.shape[-1]):
        xc, yc = x[..., ch], y[..., ch]

        def blur(z):
            return gaussian_filter(z, sigma=sigma, mode="reflect", truncate=3.5)

        mx, my = blur(xc), blur(yc)
        vx, vy, cxy = blur(xc * xc) - mx * mx, blur(yc * yc) - my * my, blur(xc * yc) - mx * my
        s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
        vals.append(s.mean())
    return float(np.mean(vals))


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB of two uint8 images; ``PSNR_CAP_DB`` if identical."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return PSNR_CAP_DB if mse == 0 else min(PSNR_CAP_DB, 10 * np.log10(255.0 ** 2 / mse))


def attack_auc(*, members: np.ndarray, nonmembers: np.ndarray, fpr: float = 0.01) -> dict:
    """Loss-threshold membership inference (Yeom et al. 2018): a lower loss means "member".

    Returns the attack's ROC ``auc`` (ties count one half; 0.5 is chance) and ``tpr_at_fpr``,
    the fraction of members flagged at the threshold that flags at most ``fpr`` of non-members."""
    m = -np.asarray(members, dtype=np.float64)
    n = -np.asarray(nonmembers, dtype=np.float64)
    if len(m) == 0 or len(n) == 0:
        raise ValueError("membership inference needs members and non-members")
    scores = np.concatenate([m, n])
    from scipy.stats import rankdata

    ranks = rankdata(scores)
    auc = (ranks[:len(m)].sum() - len(m) * (len(m) + 1) / 2) / (len(m) * len(n))
    k = int(np.floor(fpr * len(n)))  # non-members allowed above the threshold
    thr = np.sort(n)[::-1][k] if k < len(n) else -np.inf
    tpr = float(np.mean(m > thr))
    return {"auc": float(auc), "tpr_at_fpr": tpr, "fpr": fpr, "members": len(m), "nonmembers": len(n)}


def summarize(values) -> dict:
    v = np.asarray(values, dtype=np.float64)
    return {"median": float(np.median(v)), "mean": float(v.mean()), "p95": float(np.percentile(v, 95)),
            "max": float(v.max()), "min": float(v.min()), "n": int(len(v))}
