"""The randomness a differential-privacy guarantee rests on: secret, fresh, never recorded.

DP-SGD's guarantee holds only if nobody can reproduce its Gaussian noise and its Poisson
batch masks. A seed in a manifest (or a seed computed from one) voids it: someone who knows
every record but one could re-run training with and without a candidate record and compare
with the released weights. So raypriv never seeds those draws from a configured value:

* :func:`secret_seed` takes 64 bits from the operating system's CSPRNG (``os.urandom``);
* :func:`secret_generator` is a ``torch.Generator`` seeded with one; :func:`reseed` gives an
  existing generator a fresh secret seed. The DP-VAE loop re-seeds its noise and sampling
  generators before *every* step, on every rank, so no stream longer than one step's draws
  ever comes from one seed, and a resumed run never repeats an earlier run's draws.

Nothing here is stored anywhere: not in manifests, ledgers, checkpoints or logs. (Configured
seeds still fix what carries no privacy weight: initial weights, the images sampled from a
released model.) torch's generator itself is a Mersenne Twister, not a CSPRNG; Opacus'
``secure_mode`` needs ``torchcsprng``, which does not install for current torch
(README, "What the guarantee covers").

>>> from raypriv.privacy.rng import secret_generator
>>> import torch
>>> a, b = secret_generator(), secret_generator()
>>> bool(torch.equal(torch.rand(4, generator=a), torch.rand(4, generator=b)))
False
"""
from __future__ import annotations

import os


def secret_seed() -> int:
    """64 fresh bits from the OS CSPRNG, as a non-negative int."""
    return int.from_bytes(os.urandom(8), "little")


def secret_generator(device=None):
    """A ``torch.Generator`` on ``device`` (default CPU) seeded with :func:`secret_seed`."""
    import torch

    gen = torch.Generator(device=device) if device is not None else torch.Generator()
    return gen.manual_seed(secret_seed())


def reseed(gen):
    """Give ``gen`` a fresh secret seed; returns it."""
    return gen.manual_seed(secret_seed())
