"""The VAEs are DP-compatible; a BatchNorm model is refused with a clear error."""
import pytest
import torch

from raypriv.dpvae.config import DPVAEConfig
from raypriv.dpvae.models import build_vae, check_dp_compatible, per_example_loss
from raypriv.errors import ConfigError

from tests.dpvae.dpvae_helpers import ELBO


@pytest.mark.parametrize("name", ["cvae", "vae"])
def test_vaes_pass_opacus_validation_and_decode_to_the_input_shape(name):
    m = build_vae(name, in_channels=3, image_size=32, num_classes=10, latent_dim=8)
    check_dp_compatible(m)
    out = m(torch.rand(5, 3, 32, 32), torch.arange(5))
    assert out.logits.shape == (5, 3, 32, 32)
    assert per_example_loss(out, torch.rand(5, 3, 32, 32), beta=1.0).shape == (5,)


def test_conditional_samples_depend_on_the_label():
    m = build_vae("cvae", in_channels=1, image_size=8, num_classes=10, latent_dim=4)
    a = m.sample(torch.zeros(3, dtype=torch.long), generator=torch.Generator().manual_seed(0))
    b = m.sample(torch.ones(3, dtype=torch.long), generator=torch.Generator().manual_seed(0))
    assert a.shape == (3, 1, 8, 8) and 0 <= a.min() and a.max() <= 1 and not torch.equal(a, b)


def test_a_model_with_batchnorm_is_refused():
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.BatchNorm2d(4))
    with pytest.raises(ConfigError, match="BatchNorm"):
        check_dp_compatible(net)


def test_freezing_an_unknown_module_is_named():
    from raypriv.privacy.dpsgd import set_trainable

    m = build_vae("cvae", in_channels=1, image_size=8, num_classes=10)
    with pytest.raises(ConfigError, match="'encodr' names no part of the model; its parts are"):
        set_trainable(m, ("encodr",))
    trainable = set_trainable(m, ("encoder",))
    assert trainable and all(p.requires_grad for p in m.decoder.parameters())
    assert not any(p.requires_grad for p in m.encoder.parameters())


@pytest.mark.parametrize("field,value", [("epsilon", 0), ("epsilon", -2.0), ("delta", 1.0), ("budget_split", 1.0),
                                         ("accountant", "gdp"), ("method", "dpgan")])
def test_invalid_settings_name_their_field(field, value):
    with pytest.raises(ConfigError, match=field):
        DPVAEConfig(**{field: value})


def test_mlp_cvae_is_dp_compatible_and_conditional():
    m = build_vae("mlp_cvae", in_channels=1, image_size=8, num_classes=10, latent_dim=4, width=16)
    check_dp_compatible(m)
    assert m.encoder and m.decoder          # the parts dp2 freezes / trains
    out = m(torch.rand(5, 1, 8, 8), torch.arange(5))
    assert out.logits.shape == (5, 1, 8, 8) and out.mu.shape == (5, 4)
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    assert not torch.equal(m.sample(torch.zeros(3, dtype=torch.long), generator=g()),
                           m.sample(torch.ones(3, dtype=torch.long), generator=g()))


@pytest.mark.parametrize("name", ["cvae", "mlp_cvae"])
def test_temperature_scales_the_latent_draws(name):
    m = build_vae(name, in_channels=1, image_size=8, num_classes=10, latent_dim=4)
    y = torch.zeros(200, dtype=torch.long)
    spread = {t: float(m.sample(y, generator=torch.Generator().manual_seed(0), temperature=t).std(0).mean())
              for t in (1e-4, 0.5, 1.0)}
    assert spread[1e-4] < 1e-4 < spread[0.5] < spread[1.0]      # t → 0: every sample is the class's mean image


def test_ghost_clipping_gives_the_same_clipped_update_as_per_example_gradients():
    """With σ = 0 the update is the sum of clipped per-example gradients / B, whichever way it is
    computed: ghost clipping (norms only, two backward passes) must equal Opacus' hooks."""
    from raypriv.privacy.dpsgd import StagePlan, StageRunner

    x, y = torch.rand(32, 1, 8, 8), torch.randint(0, 10, (32,))
    grads = {}
    for mode in ("hooks", "ghost"):
        torch.manual_seed(0)
        m = build_vae("mlp_cvae", in_channels=1, image_size=8, num_classes=10, latent_dim=4, width=16)
        plan = StagePlan(name="main", steps=1, sample_rate=0.5, sigma=0.0, max_grad_norm=5.0, lr=1e-3)
        runner = StageRunner(m, plan, world_size=1, grad_sample_mode=mode, loss_fn=ELBO)
        runner.attach(global_rows=64)
        torch.manual_seed(1)                  # the same reparameterisation noise
        runner.step(x, y)
        grads[mode] = torch.cat([p.grad.flatten() for p in m.parameters()])
        runner.detach()
    assert grads["hooks"].abs().sum() > 0
    torch.testing.assert_close(grads["ghost"], grads["hooks"], rtol=1e-4, atol=1e-6)


def test_the_report_scores_synthetic_data_with_a_classifier_without_batchnorm():
    """BatchNorm statistics of generated images do not transfer to real ones (README), so the
    report's classifier has none, in the API, the CLI default and job specs alike."""
    from raypriv.dpvae.config import default_victim
    from raypriv.dpvae.job import DPVAEPipelineJob as DPVAEJob
    from raypriv.models import build_model

    assert default_victim().model == "plain_cnn" and default_victim(epochs=3).epochs == 3
    net = build_model("plain_cnn", in_channels=1, num_classes=10, image_size=28)
    assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in net.modules())
    assert net(torch.rand(2, 1, 28, 28)).shape == (2, 10)
    job = DPVAEJob.from_dict({"source": "digits", "output": "/tmp/x", "evaluate": {"epochs": 2}})
    assert job.evaluate.model == "plain_cnn" and job.evaluate.optimizer == "adam" and job.evaluate.epochs == 2
    job = DPVAEJob.from_dict({"source": "digits", "output": "/tmp/x", "evaluate": {"model": "small_cnn"}})
    assert job.evaluate.model == "small_cnn"


def test_unset_width_follows_the_budget_for_the_mlp_and_the_model_default_otherwise():
    from raypriv.dpvae.models import model_kwargs

    def width(**cfg):
        return model_kwargs(image_shape=(28, 28, 1), num_classes=10, config=DPVAEConfig(**cfg))["width"]

    assert width(epsilon=10) == 192 and width(epsilon=3) == 192      # small noise: the wider decoder
    assert width(epsilon=1) == 128                                   # large noise: fewer noisy coordinates
    assert width(method="none") == 128 and width(model="cvae", epsilon=10) == 32
    assert width(epsilon=10, width=48) == 48                          # an explicit width always wins
