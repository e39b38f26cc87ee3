"""The VAEs are DP-compatible; a BatchNorm model is refused with a clear error."""
import pytest
import torch

from raypriv.dpvae.config import DPVAEConfig
from raypriv.dpvae.models import build_vae, check_dp_compatible, per_example_loss
from raypriv.errors import ConfigError


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
    from raypriv.dpvae.dpsgd import set_trainable

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
