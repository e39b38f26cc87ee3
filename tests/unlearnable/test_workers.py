import numpy as np
import torch

from raypriv.unlearnable.workers import _class_sums, recalibrate_batchnorm


def test_recalibrate_batchnorm_uses_exact_sample_mean():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.BatchNorm2d(2))
    model[0].running_mean.fill_(100.0)                 # stale statistics from "earlier training"
    x = torch.randn(40, 2, 4, 4) * 3 + torch.tensor([1.0, -2.0]).view(1, 2, 1, 1)
    recalibrate_batchnorm(model, x, batch_size=10, device="cpu")
    torch.testing.assert_close(model[0].running_mean, x.mean(dim=(0, 2, 3)), rtol=0, atol=1e-5)
    assert model[0].momentum == 0.1                      # restored for later training


def test_class_sums_are_exact_float64_sums():
    delta = np.random.default_rng(0).uniform(-1, 1, size=(6, 2, 2, 1)).astype(np.float32)
    labels = np.array([0, 2, 0, 2, 2, 5])
    out = _class_sums(delta, labels, 6)
    assert out["label"].tolist() == [0, 2, 5] and out["count"].tolist() == [2, 3, 1]
    np.testing.assert_array_equal(out["delta_sum"][1], delta[[1, 3, 4]].astype(np.float64).sum(0))
