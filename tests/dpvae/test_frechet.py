"""The Fréchet distance of the DP-VAE report on full-rank and rank-deficient covariances."""
import warnings

import numpy as np
import pytest

from raypriv.dpvae.report import frechet_distance


def _scipy_reference(a, b):
    from scipy import linalg

    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = linalg.sqrtm(s1 @ s2).real
    return ((a.mean(0) - b.mean(0)) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean)


def test_equals_the_scipy_formula_on_full_rank_features():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(500, 6)) @ rng.normal(size=(6, 6))
    b = rng.normal(size=(400, 6)) * 2 + 1
    assert frechet_distance(a, b) == pytest.approx(_scipy_reference(a, b), rel=1e-9)


def test_rank_deficient_covariances_give_the_exact_value_without_warnings():
    """30 images of 64 features, 3 of them never firing: both covariances are singular. The
    same cloud shifted by d has distance |d|² exactly; the scipy route warns (or needs eps·I)."""
    rng = np.random.default_rng(0)
    a = np.zeros((30, 64))
    a[:, :61] = rng.normal(size=(30, 61))
    shift = np.zeros(64)
    shift[:2] = [3.0, 4.0]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert frechet_distance(a, a + shift) == pytest.approx(25.0, abs=1e-4)
        assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-4)
        other = np.zeros((20, 64))
        other[:, :10] = rng.normal(size=(20, 10))
        assert np.isfinite(frechet_distance(a, other)) and frechet_distance(a, other) > 0
