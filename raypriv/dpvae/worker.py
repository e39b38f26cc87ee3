"""The per-worker Ray Train loop of DP-VAE training (see :mod:`raypriv.dpvae.train`)."""
from __future__ import annotations

import os
import tempfile
from typing import Any

import torch

from raypriv.dpvae.dpsgd import StagePlan, StageRunner, poisson_batch
from raypriv.privacy.rng import reseed, secret_generator, secret_seed

#: Progress lines per stage (rank 0 prints loss and ε spent about this often).
PROGRESS_LINES = 10


class SimulatedFault(RuntimeError):
    """Raised by the test hook ``RAYPRIV_FAULT_AT_STEP``."""


def load_worker_shard(name: str, *, rank: int, world: int, key: int, rows: int, device) -> tuple:
    """This worker's rows of dataset ``name`` (every row in exactly one worker's shard, by a
    keyed hash of its id: :func:`raypriv.shards.load_shard`) as float NCHW images in [0, 1]
    and labels. Checks that the shards add up to all ``rows`` (no row dropped, none twice)."""
    import ray.train

    from raypriv.shards import load_shard, to_float_nchw

    images, labels = load_shard(ray.train.get_dataset_shard(name), rank=rank, world=world, key=key,
                                what=f"DP-VAE {name} set")
    total = torch.tensor(len(labels), dtype=torch.int64, device=device)     # NCCL reduces CUDA tensors only
    if world > 1:
        torch.distributed.all_reduce(total)
    if int(total) != rows:
        raise RuntimeError(f"the {world} worker shards of {name!r} hold {int(total)} rows, the set has {rows}")
    return to_float_nchw(images).to(device), labels.to(device)


class SecretPoissonSampler:
    """This worker's Poisson batch masks over its ``rows``: each row independently with
    probability ``sample_rate``, from a generator given a fresh secret seed before every draw
    (:mod:`raypriv.privacy.rng`): nothing configured or recorded reproduces a mask."""

    def __init__(self, rows: int, *, sample_rate: float):
        self.rows, self.sample_rate = rows, sample_rate
        self.generator = secret_generator()

    def draw(self) -> torch.Tensor:
        return poisson_batch(self.rows, sample_rate=self.sample_rate, generator=reseed(self.generator))


def _restore() -> dict | None:
    import ray.train

    ckpt = ray.train.get_checkpoint()
    if ckpt is None:
        return None
    with ckpt.as_directory() as d:
        return torch.load(os.path.join(d, "state.pt"), map_location="cpu", weights_only=False)


def _save(state: dict, metrics: dict, *, rank: int) -> None:
    """Collective ``ray.train.report``; rank 0 attaches the checkpoint."""
    import ray.train
    from ray.train import Checkpoint

    if rank != 0:
        ray.train.report(metrics)
        return
    with tempfile.TemporaryDirectory() as d:
        torch.save(state, os.path.join(d, "state.pt"))
        ray.train.report(metrics, checkpoint=Checkpoint.from_directory(d))


def stage_starts(plans: list[StagePlan], *, checkpoint_stage: int, checkpoint_step: int,
                 charged: dict[str, int]) -> dict[int, int]:
    """Where each stage still to run starts: ``{stage index: steps already done}``.

    Stages before the checkpoint's are done. A private stage continues after its last
    *charged* step, even when that is past the checkpoint: a step charged but lost in a crash
    is paid for and never re-run (re-running it would spend budget the ledger never granted).
    A non-private stage continues from its checkpoint.

    >>> from raypriv.dpvae.dpsgd import StagePlan
    >>> plans = [StagePlan(name=n, steps=10, sample_rate=0.1, sigma=1.0, max_grad_norm=1.0, lr=0.01, beta=1.0)
    ...          for n in ("pretrain", "main")]
    >>> stage_starts(plans, checkpoint_stage=0, checkpoint_step=4, charged={"pretrain": 7})
    {0: 7, 1: 0}
    >>> stage_starts(plans, checkpoint_stage=1, checkpoint_step=0, charged={"pretrain": 10, "main": 3})
    {1: 3}
    """
    return {i: charged.get(plan.name, 0) if plan.private else (checkpoint_step if i == checkpoint_stage else 0)
            for i, plan in enumerate(plans) if i >= checkpoint_stage}


def train_loop(cfg: dict[str, Any]) -> None:
    import ray
    import ray.train
    import ray.train.torch

    from raypriv.dpvae.config import DPVAEConfig
    from raypriv.dpvae.models import build_vae
    from raypriv.dpvae.train import model_kwargs

    config = DPVAEConfig.from_dict(cfg["config"])
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    torch.set_num_threads(cfg["threads"])
    device = ray.train.torch.get_device()
    torch.manual_seed(config.seed)    # identical initial weights on every rank: all the seed decides
    model = build_vae(config.model, **model_kwargs(image_shape=cfg["image_shape"], num_classes=cfg["num_classes"],
                                                   config=config)).to(device)
    torch.manual_seed(secret_seed())  # the VAE's latent draws while training: not from the recorded seed
    plans = [StagePlan(**{**p, "freeze": tuple(p["freeze"])}) for p in cfg["plans"]]
    state = _restore() or {"stage": 0, "step": 0, "history": []}
    if "model" in state:
        model.load_state_dict(state["model"])
    monitor = cfg["monitor"][0]
    charged = ray.get(monitor.charged.remote())
    shards: dict[str, tuple] = {}
    for i, start in stage_starts(plans, checkpoint_stage=state["stage"], checkpoint_step=state["step"],
                                 charged=charged).items():
        plan = plans[i]
        data = "train" if plan.private or config.method == "none" else "public"
        if data not in shards:
            shards[data] = load_worker_shard(data, rank=rank, world=world, key=cfg["shard_key"],
                                             rows=cfg["true_rows"][data], device=device)
        x, y = shards[data]
        resumed = i == state["stage"]
        runner = StageRunner(model, plan, world_size=world, grad_sample_mode=config.grad_sample_mode,
                             optimizer_state=state.get("optimizer") if resumed else None)
        runner.attach(global_rows=cfg["rows"][data])
        _run_stage(runner, plan, x, y if model.num_classes else None, start=start, stage_index=i, state=state,
                   cfg=cfg, config=config, rank=rank, monitor=monitor)
        runner.detach()
    _save({"stage": len(plans), "step": 0, "history": state["history"], "model": model.state_dict()},
          {"stage": "done", "step": 0}, rank=rank)


def _simulated_crash(fault: dict, stage: str, step: int) -> None:
    """The test hook: crash inside ``step`` once its batch is drawn, before its update exists,
    saying how many of the stage's steps this process reads as charged on disk."""
    from raypriv.dpvae.ledger import PrivacyLedger

    on_disk = PrivacyLedger.open(fault["ledger"]).charged(stage) if os.path.exists(fault["ledger"]) else 0
    raise SimulatedFault(f"simulated crash in step {step} of stage {stage} before its update, "
                         f"with {on_disk} steps of {stage} charged on disk")


def _run_stage(runner: StageRunner, plan: StagePlan, x, y, *, start: int, stage_index: int, state: dict,
               cfg: dict, config, rank: int, monitor) -> None:
    import ray

    sampler = SecretPoissonSampler(len(x), sample_rate=plan.sample_rate)
    every = max(1, plan.steps // PROGRESS_LINES)
    loss_sum = torch.zeros(2, dtype=torch.float64)
    fault = cfg["fault"]
    for step in range(start + 1, plan.steps + 1):
        if plan.private and rank == 0:
            ray.get(monitor.charge.remote(plan.name))    # durable before the step touches the data
        idx = sampler.draw()
        if fault["step"] and plan.name == fault["stage"] and step == fault["step"]:
            _simulated_crash(fault, plan.name, step)
        ls, n = runner.step(x[idx], None if y is None else y[idx])
        if not plan.private:     # a private stage's loss is an unnoised statistic of private rows
            loss_sum += torch.tensor([ls, n], dtype=torch.float64)
        last = step == plan.steps
        if step % every == 0 or last:
            loss = None if plan.private else float(loss_sum[0] / max(float(loss_sum[1]), 1.0))
            if rank == 0:
                monitor.report.remote(plan.name, step, plan.steps, loss, plan.private)
            if loss is not None:
                state["history"].append({"stage": plan.name, "step": step, "loss": loss})
            loss_sum.zero_()
        if step % config.checkpoint_every == 0 or last:
            _save({"stage": stage_index + 1 if last else stage_index, "step": 0 if last else step,
                   "history": state["history"], "model": runner.model.state_dict(),
                   "optimizer": None if last else runner.base_optimizer.state_dict()},
                  {"stage": plan.name, "step": step}, rank=rank)
