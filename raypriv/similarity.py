"""Image similarity: SSIM and PSNR of uint8 images, one pair or a batch of pairs, and the
summary statistics reports use. What the synthetic-data check measures between synthetic and
nearest real images, and what a protection costs visually (released vs original).

>>> import numpy as np
>>> a = np.zeros((2, 8, 8, 1), np.uint8)
>>> b = a.copy(); b[1] += 1
>>> ssim_per_image(a, b).round(4).tolist(), psnr_per_image(a, b).round(2).tolist()
([1.0, 0.8667], [100.0, 48.13])
>>> round(ssim(a[0], a[0]), 6), psnr(a[0], a[0])
(1.0, 100.0)
"""
from __future__ import annotations

import numpy as np

__all__ = ["PSNR_CAP_DB", "psnr", "psnr_per_image", "ssim", "ssim_per_image", "summarize"]

PSNR_CAP_DB = 100.0  # reported for identical images (MSE = 0)


def _batch(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 4:
        raise ValueError(f"expected two N×H×W×C batches of the same shape, got {x.shape} and {y.shape}")
    return x, y


def ssim_per_image(a: np.ndarray, b: np.ndarray, *, sigma: float = 1.5) -> np.ndarray:
    """Structural similarity (Wang et al. 2004) of each pair of uint8 ``N×H×W×C`` images.

    Gaussian window (σ = 1.5, reflect padding, so it also works on 8×8 images), constants
    ``(0.01·255)²`` and ``(0.03·255)²``, averaged over all pixels and channels of an image."""
    from scipy.ndimage import gaussian_filter

    x, y = _batch(a, b)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2

    def blur(z):   # over height and width only: images and channels stay apart
        return gaussian_filter(z, sigma=(0, sigma, sigma, 0), mode="reflect", truncate=3.5)

    mx, my = blur(x), blur(y)
    vx, vy, cxy = blur(x * x) - mx * mx, blur(y * y) - my * my, blur(x * y) - mx * my
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return s.mean(axis=(1, 2, 3))


def psnr_per_image(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Peak signal-to-noise ratio in dB of each pair of uint8 ``N×H×W×C`` images;
    ``PSNR_CAP_DB`` for identical ones."""
    x, y = _batch(a, b)
    mse = ((x - y) ** 2).mean(axis=(1, 2, 3))
    with np.errstate(divide="ignore"):
        db = 10 * np.log10(255.0 ** 2 / mse)
    return np.minimum(PSNR_CAP_DB, np.where(mse == 0, PSNR_CAP_DB, db))


def ssim(a: np.ndarray, b: np.ndarray, *, sigma: float = 1.5) -> float:
    """SSIM of two uint8 ``H×W×C`` images (:func:`ssim_per_image` of one pair)."""
    return float(ssim_per_image(a[None], b[None], sigma=sigma)[0])


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of two uint8 ``H×W×C`` images (:func:`psnr_per_image` of one pair)."""
    return float(psnr_per_image(a[None], b[None])[0])


def summarize(values) -> dict:
    """Median, mean, 95th percentile, max, min and count of ``values``."""
    v = np.asarray(values, dtype=np.float64)
    return {"median": float(np.median(v)), "mean": float(v.mean()), "p95": float(np.percentile(v, 95)),
            "max": float(v.max()), "min": float(v.min()), "n": int(len(v))}
