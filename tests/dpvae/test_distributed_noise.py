"""A Ray Train DP step over W workers is the single-process step.

* Noise is added once per *global* step: with the signal removed, the averaged update has
  per-coordinate standard deviation σ·C/B for 1 and for 2 workers (B the expected global
  batch). Adding noise on every worker would give √W·σ·C/B.
* Without noise, the clipped and averaged update of 2 workers holding half the rows each is
  the update of one worker holding them all (the gradient all-reduce sums every row once).

Checked for Opacus' per-example gradient hooks (conv VAE) and for ghost clipping (MLP VAE),
whose distributed optimizers differ, and for the non-private step."""
import sys

import pytest
import torch

SIGMA, CLIP, ROWS, RATE, STEPS = 2.0, 1.5, 400, 0.25, 3     # B = q·N = 100


def zero_signal(module, x, y):
    out = module(x, y)
    return 0.0 * out.logits.flatten(1).sum(1)           # per-example gradients are exactly 0


PROBES = {"hooks": ("cvae", dict(latent_dim=8, width=16)), "ghost": ("mlp_cvae", dict(latent_dim=8, width=64))}


def probe_loop(cfg):
    import ray.train

    from raypriv.privacy.dpsgd import StagePlan, StageRunner, poisson_batch
    from raypriv.dpvae.models import build_vae

    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    torch.manual_seed(0)
    name, kwargs = PROBES[cfg["mode"]]
    model = build_vae(name, in_channels=1, image_size=8, num_classes=10, **kwargs)
    plan = StagePlan(name="main", steps=STEPS, sample_rate=RATE, sigma=SIGMA, max_grad_norm=CLIP, lr=1e-3)
    runner = StageRunner(model, plan, world_size=world, loss_fn=zero_signal, grad_sample_mode=cfg["mode"])
    runner.attach(global_rows=ROWS)
    gen = torch.Generator().manual_seed(rank)
    x, y = torch.rand(ROWS // world, 1, 8, 8), torch.randint(0, 10, (ROWS // world,))
    stds = []
    for _ in range(STEPS):
        idx = poisson_batch(len(x), sample_rate=RATE, generator=gen)
        runner.step(x[idx], y[idx])
        g = torch.cat([p.grad.flatten() for p in model.parameters()])
        stds.append(float(g.std()))
    return {"stds": stds} if rank == 0 else None


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


EQUAL_ROWS = 48


def posterior_mean_loss(module, x, y, *, beta=1.0):
    """The negative ELBO at z = μ: no sampling noise, so each row's loss cannot depend on W.
    (Calling the wrapped VAE's encode/decode still runs Opacus' hooks on its layers.)"""
    from raypriv.dpvae.models import VAEOutput, per_example_loss

    vae = getattr(module, "_module", module)
    mu, logvar = vae.encode(x, y)
    return per_example_loss(VAEOutput(logits=vae.decode(mu, y), mu=mu, logvar=logvar), x, beta=beta)


def update_loop(cfg):
    """One step on rows ``rank::world`` of a fixed batch (q = 1, σ = 0); rank 0 returns each mode's update."""
    import ray.train

    from raypriv.privacy.dpsgd import StagePlan, StageRunner
    from raypriv.dpvae.models import build_vae

    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    torch.manual_seed(0)
    x, y = torch.rand(EQUAL_ROWS, 1, 8, 8), torch.randint(0, 10, (EQUAL_ROWS,))
    updates = {}
    for mode, private in (("hooks", True), ("ghost", True), ("non-private", False)):
        torch.manual_seed(1)
        name, kwargs = PROBES["ghost" if mode == "non-private" else mode]
        model = build_vae(name, in_channels=1, image_size=8, num_classes=10, **kwargs)
        plan = StagePlan(name="main", steps=1, sample_rate=1.0, sigma=0.0 if private else None, max_grad_norm=CLIP,
                         lr=1e-3, private=private)
        runner = StageRunner(model, plan, world_size=world, grad_sample_mode="hooks" if mode == "non-private" else mode,
                             loss_fn=posterior_mean_loss)
        runner.attach(global_rows=EQUAL_ROWS)
        runner.step(x[rank::world], y[rank::world])
        updates[mode] = torch.cat([p.grad.flatten() for p in model.parameters()]).numpy()
    return updates if rank == 0 else None


def test_two_workers_give_the_single_process_update(ray_local, tmp_path):
    from ray import cloudpickle
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    got = {w: TorchTrainer(update_loop, scaling_config=ScalingConfig(num_workers=w),
                           run_config=RunConfig(storage_path=str(tmp_path), name=f"equal{w}")).fit().return_value
           for w in (1, 2)}
    for mode, single in got[1].items():
        assert abs(single).sum() > 0
        torch.testing.assert_close(torch.from_numpy(got[2][mode]), torch.from_numpy(single), rtol=1e-4, atol=1e-6,
                                   msg=mode)
