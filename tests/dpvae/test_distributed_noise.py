"""Noise is added once per *global* step: with the signal removed, the averaged update of a
Ray Train DP step has per-coordinate standard deviation σ·C/B for 1 and for 2 workers
(B the expected global batch). Adding noise on every worker would give √W·σ·C/B. Checked for
Opacus' per-example gradient hooks (conv VAE) and for ghost clipping (MLP VAE), whose
distributed optimizers differ."""
import sys

import pytest
import torch

SIGMA, CLIP, ROWS, RATE, STEPS = 2.0, 1.5, 400, 0.25, 3     # B = q·N = 100


def zero_signal(module, x, y, *, beta):
    out = module(x, y)
    return 0.0 * out.logits.flatten(1).sum(1)           # per-example gradients are exactly 0


PROBES = {"hooks": ("cvae", dict(latent_dim=8, width=16)), "ghost": ("mlp_cvae", dict(latent_dim=8, width=64))}


def probe_loop(cfg):
    import ray.train

    from raypriv.dpvae.dpsgd import StagePlan, StageRunner, poisson_batch
    from raypriv.dpvae.models import build_vae

    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    torch.manual_seed(0)
    name, kwargs = PROBES[cfg["mode"]]
    model = build_vae(name, in_channels=1, image_size=8, num_classes=10, **kwargs)
    plan = StagePlan(name="main", steps=STEPS, sample_rate=RATE, sigma=SIGMA, max_grad_norm=CLIP, lr=1e-3, beta=1.0)
    runner = StageRunner(model, plan, world_size=world, loss_fn=zero_signal, grad_sample_mode=cfg["mode"])
    runner.attach(global_rows=ROWS)
    gen = torch.Generator().manual_seed(rank)
    x, y = torch.rand(ROWS // world, 1, 8, 8), torch.randint(0, 10, (ROWS // world,))
    stds, sums = [], []
    for _ in range(STEPS):
        idx = poisson_batch(len(x), sample_rate=RATE, generator=gen)
        runner.step(x[idx], y[idx])
        g = torch.cat([p.grad.flatten() for p in model.parameters()])
        stds.append(float(g.std()))
        sums.append(float(g.double().abs().sum()))
    return {"stds": stds, "sums": sums} if rank == 0 else {"sums": sums}


@pytest.mark.parametrize("workers,mode", [(1, "hooks"), (2, "hooks"), (2, "ghost")])
def test_averaged_update_noise_is_sigma_c_over_b(ray_local, workers, mode, tmp_path):
    from ray import cloudpickle
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    result = TorchTrainer(probe_loop, train_loop_config={"mode": mode},
                          scaling_config=ScalingConfig(num_workers=workers),
                          run_config=RunConfig(storage_path=str(tmp_path), name=f"probe{workers}{mode}")).fit()
    out = result.return_value
    expected = SIGMA * CLIP / (RATE * ROWS)
    for std in out["stds"]:
        assert std == pytest.approx(expected, rel=0.03), (std, expected)
