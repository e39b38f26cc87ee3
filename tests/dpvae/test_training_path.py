"""The DP²-VAE training path itself: stage 2 freezes the encoder, the weights move and the
loss falls, and the optimizer adds the σ the plan records."""
import torch

from raypriv.dpvae import DPVAEConfig, plan_stages
from raypriv.privacy.dpsgd import StagePlan, StageRunner
from raypriv.dpvae.models import build_vae

from tests.dpvae.dpvae_helpers import ELBO, TINY, TRUE_ROWS


def _model():
    torch.manual_seed(0)
    return build_vae("mlp_cvae", in_channels=1, image_size=8, num_classes=10, latent_dim=4, width=16)


def _batch():
    """64 real 8×8 digits in [0, 1] (scikit-learn's, no Ray needed) and their labels."""
    from sklearn.datasets import load_digits

    d = load_digits()
    return torch.tensor(d.images[:64] / 16, dtype=torch.float32)[:, None], torch.tensor(d.target[:64])


def test_dp2_freezes_the_encoder_in_stage_two_only_and_the_baseline_never():
    """Without the freeze, "DP²" silently becomes two-stage DP-SGD."""
    dp2 = plan_stages(DPVAEConfig(**TINY), train_rows=TRUE_ROWS)
    assert [(p.name, p.freeze) for p in dp2] == [("pretrain", ()), ("main", ("encoder",))]
    base = plan_stages(DPVAEConfig(**{**TINY, "method": "dpsgd"}), train_rows=TRUE_ROWS)
    assert [p.freeze for p in base] == [()]


def test_a_frozen_encoder_stays_fixed_while_the_decoder_trains():
    model = _model()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    plan = StagePlan(name="main", steps=3, sample_rate=0.5, sigma=0.5, max_grad_norm=1.0, lr=1e-2,
                     freeze=("encoder",))
    runner = StageRunner(model, plan, world_size=1, grad_sample_mode="ghost", loss_fn=ELBO)
    runner.attach(global_rows=128)
    x, y = _batch()
    for _ in range(3):
        runner.step(x, y)
    runner.detach()
    moved = {n: not torch.equal(before[n], p.detach()) for n, p in model.named_parameters()}
    assert moved and all(not m for n, m in moved.items() if n.startswith("encoder."))
    assert all(m for n, m in moved.items() if not n.startswith("encoder."))
    assert runner.optimizer.noise_multiplier == plan.sigma and runner.optimizer.max_grad_norm == plan.max_grad_norm


def test_training_moves_every_weight_and_lowers_the_loss():
    model = _model()
    before = [p.detach().clone() for p in model.parameters()]
    plan = StagePlan(name="pretrain", steps=60, sample_rate=1.0, sigma=None, max_grad_norm=1.0, lr=1e-2,
                     private=False)
    runner = StageRunner(model, plan, world_size=1, loss_fn=ELBO)
    runner.attach(global_rows=64)
    x, y = _batch()
    losses = [runner.step(x, y)[0] / len(x) for _ in range(60)]
    assert all(not torch.equal(b, p.detach()) for b, p in zip(before, model.parameters()))
    assert sum(losses[-5:]) / 5 < 0.8 * sum(losses[:5]) / 5
