"""One DP-SGD stage on one worker of a data-parallel group (Opacus underneath), for any
model and any per-example loss: DP-VAE training uses it, and so can any technique that
trains on private rows.

Equivalence with a single process (the privacy argument):

* **Sampling.** Each worker holds a disjoint shard and includes each of its rows in a step's
  batch independently with probability ``q = B / N`` — ``N`` the *global* training-set size,
  ``B`` the expected *global* batch. The union over workers is then exactly a Poisson sample
  of the whole set with rate ``q``, the mechanism the accountant charges.
* **Secret randomness.** The noise and the batch masks come from generators re-seeded from
  the OS CSPRNG before every step (:mod:`raypriv.privacy.rng`); nothing recorded anywhere
  reproduces them, and a resumed run never repeats a draw.
* **Noise.** Every worker clips its per-example gradients to norm ``C`` and sums them; Opacus'
  :class:`~opacus.optimizers.DistributedDPOptimizer` adds Gaussian noise N(0, σ²C²) on rank 0
  only, all-reduces the sums, and divides by ``(B / W)·W = B``. The averaged update therefore
  carries noise of standard deviation σ·C/B per coordinate, whatever ``W`` is, as in one
  process (``tests/dpvae/test_distributed_noise.py`` measures it for 1 and 2 workers).

A ``loss_fn(module, x, y)`` returns the per-example losses ``(B,)`` of a batch.

Non-private stages (public pre-training, the non-private reference) use the same sampler and
plain averaged gradients.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Callable

import torch


@dataclasses.dataclass(frozen=True, kw_only=True)
class StagePlan:
    """What one stage does: ``steps`` steps at Poisson rate ``sample_rate``; ``sigma`` is None
    for a non-private stage; ``freeze`` names top-level submodules kept fixed."""

    name: str
    steps: int
    sample_rate: float
    sigma: float | None
    max_grad_norm: float
    lr: float
    freeze: tuple[str, ...] = ()
    private: bool = True


def set_trainable(model: torch.nn.Module, freeze: tuple[str, ...]) -> list[torch.nn.Parameter]:
    """Freeze the named submodules (prefixes of parameter names); return the trainable params."""
    names = dict(model.named_parameters())
    for prefix in freeze:
        if not any(n == prefix or n.startswith(prefix + ".") for n in names):
            from raypriv.errors import ConfigError

            roots = sorted({n.split(".")[0] for n in names})
            raise ConfigError("freeze", f"{prefix!r} names no part of the model; its parts are {roots}")
    trainable = []
    for n, p in names.items():
        p.requires_grad_(not any(n == f or n.startswith(f + ".") for f in freeze))
        if p.requires_grad:
            trainable.append(p)
    return trainable


def poisson_batch(n_local: int, *, sample_rate: float, generator: torch.Generator) -> torch.Tensor:
    """Indices of this worker's rows in one step's batch (each row independently w.p. q)."""
    return (torch.rand(n_local, generator=generator) < sample_rate).nonzero().flatten()


class StageRunner:
    """Owns the (possibly Opacus-wrapped) model and optimizer of one stage on one worker."""

    def __init__(self, model: torch.nn.Module, plan: StagePlan, *, world_size: int, loss_fn: Callable,
                 grad_sample_mode: str = "hooks", optimizer_state: dict | None = None):
        self.plan = plan
        self.loss_fn = loss_fn
        self.world = world_size
        self.model = model
        params = set_trainable(model, plan.freeze)
        opt = torch.optim.Adam(params, lr=plan.lr)
        if optimizer_state:
            opt.load_state_dict(optimizer_state)
        self.base_optimizer = opt
        self.ghost = plan.private and grad_sample_mode == "ghost"
        self.module = _GRAD_SAMPLE_WRAPPERS[grad_sample_mode](model, plan) if plan.private else model
        self.optimizer = None
        self.noise_generator = None

    def attach(self, *, global_rows: int) -> None:
        """Build the DP optimizer for a training set of ``global_rows`` (for a private stage the
        *declared* size, never the true count: it sets the update's divisor q·N) with rank-0
        noise when W > 1, drawn from a secret generator (:mod:`raypriv.privacy.rng`)."""
        if not self.plan.private:
            self.optimizer = self.base_optimizer
            return
        from opacus import optimizers

        if self.ghost:
            cls = _coalesced(optimizers.DistributedDPOptimizerFastGradientClipping) if self.world > 1 \
                else optimizers.DPOptimizerFastGradientClipping
        else:
            cls = _coalesced(optimizers.DistributedDPOptimizer) if self.world > 1 else optimizers.DPOptimizer
        from raypriv.privacy.rng import secret_generator

        expected_global = self.plan.sample_rate * global_rows
        device = next(iter(self.base_optimizer.param_groups[0]["params"])).device
        self.noise_generator = secret_generator(device)
        self.optimizer = cls(self.base_optimizer, noise_multiplier=float(self.plan.sigma),
                             max_grad_norm=self.plan.max_grad_norm,
                             expected_batch_size=max(expected_global / self.world, 1e-12), loss_reduction="mean",
                             generator=self.noise_generator)

    def step(self, x: torch.Tensor, y: torch.Tensor | None) -> tuple[float, int]:
        """One optimizer step on this worker's sampled rows; returns (sum of losses, rows)."""
        loss_sum = self.backward(x, y)
        self.apply(len(x))
        return loss_sum, len(x)

    def backward(self, x: torch.Tensor, y: torch.Tensor | None) -> float:
        """Forward and backward pass(es) of a step: leaves what the optimizer needs (per-example
        gradients, or with ghost clipping the already clipped sum) and returns the loss sum."""
        self.optimizer.zero_grad(set_to_none=True)
        if not len(x):
            self._empty_batch()
            return 0.0
        losses = self.loss_fn(self.module, x, y)
        if self.ghost:  # two backward passes: per-example norms, then the clipped sum
            from opacus.utils.fast_gradient_clipping_utils import DPTensorFastGradientClipping

            DPTensorFastGradientClipping(self.module, self.optimizer, losses, loss_reduction="mean").backward()
        else:
            losses.mean().backward()
        return float(losses.detach().sum())

    def apply(self, n_local: int) -> None:
        """The update: clip, noise and step (private), or all-reduce and step (non-private)."""
        if self.plan.private:
            from raypriv.privacy.rng import reseed

            reseed(self.noise_generator)
            self.optimizer.step()
        else:
            self._plain_step(n_local)

    def detach(self) -> None:
        """Remove Opacus' hooks so the plain model can go on to the next stage."""
        if self.module is not self.model and hasattr(self.module, "_close"):
            self.module._close()

    def _empty_batch(self) -> None:
        """A worker whose Poisson sample is empty still joins the step (it contributes zeros)."""
        for p in self.base_optimizer.param_groups[0]["params"]:
            if self.plan.private and not self.ghost:
                p.grad_sample = torch.zeros((0, *p.shape), device=p.device, dtype=p.dtype)
            else:
                p.grad = torch.zeros_like(p)

    def _plain_step(self, n_local: int) -> None:
        """Non-private step: sum of local mean-gradients × local rows, all-reduced, / expected B."""
        params = self.base_optimizer.param_groups[0]["params"]
        for p in params:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
            p.grad.mul_(n_local)
        total = torch.tensor(float(n_local))
        if self.world > 1:
            all_reduce_flat([p.grad for p in params] + [total])
        for p in params:
            p.grad.div_(max(float(total), 1.0))
        self.base_optimizer.step()


def all_reduce_flat(tensors: list[torch.Tensor]) -> None:
    """Sum ``tensors`` over the process group in place, with one all-reduce of their
    concatenation. Gloo on CPUs pays a fixed latency per call: the default MLP cVAE's eight
    gradient tensors take 13.9 ms one call each and 2.3 ms as one buffer (2 processes, this
    machine), which decided whether a second Ray Train worker paid off at all."""
    flat = torch.cat([t.reshape(-1) for t in tensors])
    torch.distributed.all_reduce(flat)
    offset = 0
    for t in tensors:
        t.copy_(flat[offset:offset + t.numel()].view_as(t))
        offset += t.numel()


class _CoalescedReduce:
    """Mixin for Opacus' distributed DP optimizers: the same sum-then-average of the (clipped,
    rank-0-noised) gradients as their ``reduce_gradients``, in one all-reduce instead of one
    per parameter."""

    def reduce_gradients(self):
        grads = [p.grad for p in self.params if p.requires_grad]
        all_reduce_flat(grads)
        if self.loss_reduction == "mean":
            for g in grads:
                g /= self.world_size


@functools.cache
def _coalesced(base: type) -> type:
    """``base`` (an Opacus distributed DP optimizer) with :class:`_CoalescedReduce`'s all-reduce."""
    return type(f"Coalesced{base.__name__}", (_CoalescedReduce, base), {})


def _hooks(model, plan, *, functorch: bool = False):
    from opacus import GradSampleModule

    return GradSampleModule(model, loss_reduction="mean", batch_first=True, force_functorch=functorch)


def _expanded_weights(model, plan):
    from opacus.grad_sample import GradSampleModuleExpandedWeights

    return GradSampleModuleExpandedWeights(model, loss_reduction="mean", batch_first=True)


def _ghost(model, plan):
    from opacus.grad_sample import GradSampleModuleFastGradientClipping

    return GradSampleModuleFastGradientClipping(model, loss_reduction="mean", batch_first=True,
                                                max_grad_norm=plan.max_grad_norm, use_ghost_clipping=True)


# How per-example gradients are clipped (``DPVAEConfig.grad_sample_mode``): Opacus' hooks,
# functorch's vmap, expanded weights, or ghost clipping (per-example gradient *norms* from
# activations and backprops, then a second backward pass with clipped weights; no per-example
# gradient of a Linear layer is ever materialised, which makes wide MLPs cheap).
_GRAD_SAMPLE_WRAPPERS = {
    "hooks": _hooks,
    "functorch": lambda model, plan: _hooks(model, plan, functorch=True),
    "ew": _expanded_weights,
    "ghost": _ghost,
}
