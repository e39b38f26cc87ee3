"""One trained two-stage DP²-VAE run shared by the DP-VAE test modules."""
import pytest

from tests.dpvae.dpvae_helpers import TINY


@pytest.fixture(scope="session")
def digits(ray_local):
    from raypriv.data import load_corpus

    return load_corpus("digits")


@pytest.fixture(scope="session")
def trained(digits, tmp_path_factory):
    """``(output directory, progress lines)`` of a 2-worker DP²-VAE run with :data:`TINY`."""
    from raypriv.dpvae import DPVAEConfig, train_dpvae
    from raypriv.runtime import ResourceSpec

    out = str(tmp_path_factory.mktemp("dp2") / "run")
    lines = []
    train_dpvae(digits, config=DPVAEConfig(**TINY), output=out, resources=ResourceSpec(workers=2),
                progress=lines.append)
    return out, lines
