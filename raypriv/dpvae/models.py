"""Convolutional VAEs that DP-SGD can train: GroupNorm instead of BatchNorm (BatchNorm
mixes examples in a batch, which per-example clipping cannot bound), nearest-neighbour
upsampling + Conv2d instead of transposed convolutions (Opacus computes per-sample
gradients of Conv2d, Linear and GroupNorm with fast hooks).

``cvae`` is class-conditional (a one-hot label joins the encoder features and the latent
code), so that sampled images carry labels; ``vae`` is unconditional. ``mlp_cvae`` is a
one-hidden-layer MLP conditional VAE, the default: few parameters carry noise, and with ghost
clipping a DP step costs less than twice a non-private one (see the README's DP²-VAE section).

>>> import torch
>>> from raypriv.dpvae.models import build_vae
>>> m = build_vae("cvae", in_channels=1, image_size=28, num_classes=10, latent_dim=16)
>>> out = m(torch.rand(4, 1, 28, 28), torch.tensor([0, 1, 2, 3]))
>>> tuple(out.logits.shape), tuple(out.mu.shape)
((4, 1, 28, 28), (4, 16))
"""
from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from raypriv.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from raypriv.dpvae.config import DPVAEConfig

_VAES: dict[str, Callable] = {}


def register_vae(name: str):
    """Decorator: make a VAE factory (keyword-only ``in_channels``, ``image_size``,
    ``num_classes``, ``latent_dim``, ``width``) available under ``name``."""

    def deco(fn):
        _VAES[name] = fn
        return fn

    return deco


@dataclasses.dataclass
class VAEOutput:
    logits: torch.Tensor   # decoder output before the sigmoid, shape of the input
    mu: torch.Tensor
    logvar: torch.Tensor


def _groups(channels: int) -> int:
    return 8 if channels % 8 == 0 else 1


class _LabelledVAE(nn.Module):
    """What every VAE here shares: one-hot labels, the reparameterised forward pass and
    sampling; subclasses define ``encode``/``decode`` and set ``num_classes``/``latent_dim``."""

    def _onehot(self, y: torch.Tensor | None, n: int, device) -> torch.Tensor:
        if not self.num_classes:
            return torch.zeros(n, 0, device=device)
        if y is None:
            raise ValueError("a conditional VAE needs labels")
        return F.one_hot(y.long(), self.num_classes).float()

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> VAEOutput:
        mu, logvar = self.encode(x, y)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        return VAEOutput(logits=self.decode(z, y), mu=mu, logvar=logvar)

    @torch.no_grad()
    def sample(self, y: torch.Tensor, *, generator: torch.Generator | None = None,
               temperature: float = 1.0) -> torch.Tensor:
        """Images in [0, 1] for labels ``y``: the decoder mean at z ~ N(0, temperature² I).
        A temperature below 1 trades diversity for typical, cleaner images (post-processing:
        no privacy cost)."""
        device = next(self.parameters()).device
        z = torch.randn(len(y), self.latent_dim, generator=generator).mul_(temperature).to(device)
        return torch.sigmoid(self.decode(z, y.to(device)))


class ConvVAE(_LabelledVAE):
    """Encoder: two stride-2 convs (GroupNorm, SiLU) and a linear layer to (μ, log σ²).
    Decoder: a linear layer, an (upsample ×2, conv, GroupNorm, SiLU) block, then upsample ×2
    and a conv to pixel logits; no wide conv runs at full resolution, which keeps a step
    (and the per-example gradients) cheap on CPUs. ``image_size`` must be divisible by 4."""

    def __init__(self, *, in_channels: int, image_size: int, num_classes: int, latent_dim: int = 16,
                 width: int = 32, conditional: bool = True):
        super().__init__()
        if image_size % 4:
            raise ConfigError("image_size", f"must be divisible by 4 for the conv VAE, got {image_size} "
                                            "(load the corpus with resize=, or use model 'mlp_cvae')")
        if latent_dim < 1 or width < 8:
            raise ConfigError("latent_dim", f"need latent_dim >= 1 and width >= 8, got {latent_dim}, {width}")
        self.num_classes = num_classes if conditional else 0
        self.latent_dim = latent_dim
        self.side = image_size // 4
        c1, c2 = width, 2 * width
        flat = c2 * self.side * self.side
        self.encoder = nn.ModuleDict({
            "conv": nn.Sequential(
                nn.Conv2d(in_channels, c1, 4, stride=2, padding=1), nn.GroupNorm(_groups(c1), c1), nn.SiLU(),
                nn.Conv2d(c1, c2, 4, stride=2, padding=1), nn.GroupNorm(_groups(c2), c2), nn.SiLU(),
                nn.Flatten()),
            "head": nn.Linear(flat + self.num_classes, 2 * latent_dim),
        })
        self.decoder = nn.ModuleDict({
            "fc": nn.Sequential(nn.Linear(latent_dim + self.num_classes, flat), nn.SiLU()),
            "conv": nn.Sequential(
                nn.Upsample(scale_factor=2), nn.Conv2d(c2, c1, 3, padding=1), nn.GroupNorm(_groups(c1), c1),
                nn.SiLU(),
                nn.Upsample(scale_factor=2), nn.Conv2d(c1, in_channels, 3, padding=1)),
        })
        self._c2 = c2

    def encode(self, x: torch.Tensor, y: torch.Tensor | None = None):
        h = self.encoder["conv"](x)
        mu, logvar = self.encoder["head"](torch.cat([h, self._onehot(y, len(x), x.device)], 1)).chunk(2, dim=1)
        return mu, logvar.clamp(-10, 10)

    def decode(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        h = self.decoder["fc"](torch.cat([z, self._onehot(y, len(z), z.device)], 1))
        return self.decoder["conv"](h.view(len(z), self._c2, self.side, self.side))


class MLPVAE(_LabelledVAE):
    """Encoder: (flattened image ⊕ one-hot label) → ``width`` ReLU units → (μ, log σ²).
    Decoder: (z ⊕ one-hot label) → ``width`` ReLU units → pixel logits. Every layer is a
    Linear layer, which Opacus' ghost clipping handles without per-example gradients."""

    def __init__(self, *, in_channels: int, image_size: int, num_classes: int, latent_dim: int = 16,
                 width: int = 128, conditional: bool = True):
        super().__init__()
        if latent_dim < 1 or width < 8:
            raise ConfigError("latent_dim", f"need latent_dim >= 1 and width >= 8, got {latent_dim}, {width}")
        self.num_classes = num_classes if conditional else 0
        self.latent_dim = latent_dim
        self.shape = (in_channels, image_size, image_size)
        pixels = in_channels * image_size * image_size
        self.encoder = nn.ModuleDict({
            "fc": nn.Sequential(nn.Linear(pixels + self.num_classes, width), nn.ReLU()),
            "head": nn.Linear(width, 2 * latent_dim)})
        self.decoder = nn.Sequential(nn.Linear(latent_dim + self.num_classes, width), nn.ReLU(),
                                     nn.Linear(width, pixels))

    def encode(self, x: torch.Tensor, y: torch.Tensor | None = None):
        h = self.encoder["fc"](torch.cat([x.flatten(1), self._onehot(y, len(x), x.device)], 1))
        mu, logvar = self.encoder["head"](h).chunk(2, dim=1)
        return mu, logvar.clamp(-10, 10)

    def decode(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.decoder(torch.cat([z, self._onehot(y, len(z), z.device)], 1)).view(len(z), *self.shape)


def per_example_loss(out: VAEOutput, x: torch.Tensor, *, beta: float) -> torch.Tensor:
    """Negative ELBO per example: Bernoulli reconstruction (summed over pixels) + β·KL."""
    rec = F.binary_cross_entropy_with_logits(out.logits, x, reduction="none").flatten(1).sum(1)
    kl = -0.5 * (1 + out.logvar - out.mu.pow(2) - out.logvar.exp()).sum(1)
    return rec + beta * kl


def elbo_loss(module, x: torch.Tensor, y: torch.Tensor | None, *, beta: float) -> torch.Tensor:
    """The VAE's per-example loss (negative ELBO) as a DP-SGD ``loss_fn`` (bind ``beta``)."""
    return per_example_loss(module(x, y), x, beta=beta)


@register_vae("cvae")
def cvae(*, in_channels: int, image_size: int, num_classes: int, latent_dim: int = 16, width: int = 32):
    return ConvVAE(in_channels=in_channels, image_size=image_size, num_classes=num_classes,
                   latent_dim=latent_dim, width=width, conditional=True)


@register_vae("vae")
def vae(*, in_channels: int, image_size: int, num_classes: int, latent_dim: int = 16, width: int = 32):
    return ConvVAE(in_channels=in_channels, image_size=image_size, num_classes=num_classes,
                   latent_dim=latent_dim, width=width, conditional=False)


@register_vae("mlp_cvae")
def mlp_cvae(*, in_channels: int, image_size: int, num_classes: int, latent_dim: int = 16, width: int = 128):
    return MLPVAE(in_channels=in_channels, image_size=image_size, num_classes=num_classes,
                  latent_dim=latent_dim, width=width, conditional=True)


def available_vaes() -> list[str]:
    return sorted(_VAES)


def build_vae(name: str, **kwargs) -> nn.Module:
    if name not in _VAES:
        raise ConfigError("model", f"unknown VAE {name!r}; choose one of {available_vaes()}")
    return _VAES[name](**kwargs)


def default_width(name: str) -> int:
    """The ``width`` VAE ``name`` uses when none is given (conv channels or MLP units)."""
    import inspect

    if name not in _VAES:
        raise ConfigError("model", f"unknown VAE {name!r}; choose one of {available_vaes()}")
    return int(inspect.signature(_VAES[name]).parameters["width"].default)


def check_dp_compatible(model: nn.Module) -> None:
    """Raise :class:`ConfigError` naming the layers Opacus cannot train privately
    (BatchNorm and friends), using Opacus' ``ModuleValidator``."""
    from opacus.validators import ModuleValidator

    errors = ModuleValidator.validate(model, strict=False)
    if errors:
        names = "; ".join(str(e) for e in errors[:5])
        raise ConfigError("model", f"{type(model).__name__} cannot be trained with DP-SGD: {names} "
                                   "(use GroupNorm instead of BatchNorm)")


def model_kwargs(*, image_shape, num_classes: int, config: "DPVAEConfig") -> dict[str, int]:
    """Constructor arguments of the run's VAE (recorded in the manifest; ``width`` resolved)."""
    h, _, c = (int(v) for v in image_shape)
    return {"in_channels": c, "image_size": h, "num_classes": int(num_classes), "latent_dim": config.latent_dim,
            "width": config.model_width() or default_width(config.model)}
