"""Settings and paths shared by the DP-VAE tests."""
import functools
import os

from raypriv.dpvae.models import elbo_loss

#: The VAE's DP-SGD loss at β = 1.
ELBO = functools.partial(elbo_loss, beta=1.0)

# digits: 1,437 training images of 8×8. The declared (public) size is 1,500, not the true
# count: q = 256 / 1500 = 0.171, 6 steps per epoch, and nothing released depends on 1,437.
TRUE_ROWS = 1437
TINY = dict(epsilon=4.0, delta=1e-4, batch_size=256, pretrain_epochs=2, epochs=2, latent_dim=4, width=8,
            checkpoint_every=4, dataset_size=1500)


def release(out: str, name: str = "manifest.json") -> str:
    """A file of a run's release directory."""
    return os.path.join(out, "release", name)
