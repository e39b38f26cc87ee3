"""The per-worker Ray Train loop of DP-VAE training (see :mod:`raypriv.dpvae.train`)."""
from __future__ import annotations

import os
import tempfile
from typing import Any

import numpy as np
import torch

from raypriv.dpvae.dpsgd import StagePlan, StageRunner, poisson_batch

#: Progress lines per stage (rank 0 prints loss and ε spent about this often).
PROGRESS_LINES = 10


class SimulatedFault(RuntimeError):
    """Raised by the test hook ``RAYPRIV_FAULT_AT_STEP``."""


def load_shard(name: str, device) -> tuple[torch.Tensor, torch.Tensor]:
    """This worker's shard of dataset ``name`` as float NCHW images in [0, 1] and labels."""
    import ray.train

    from raypriv.evaluate.victim import to_float_nchw

    xs, ys = [], []
    for batch in ray.train.get_dataset_shard(name).iter_batches(batch_size=4096, batch_format="numpy"):
        xs.append(np.asarray(batch["image"]))
        ys.append(np.asarray(batch["label"]))
    if not xs:
        raise RuntimeError(f"worker got no rows of {name!r}")
    x = to_float_nchw(torch.from_numpy(np.concatenate(xs)))
    return x.to(device), torch.from_numpy(np.concatenate(ys)).long().to(device)


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
    torch.manual_seed(config.seed)    # identical initial weights on every rank
    model = build_vae(config.model, **model_kwargs(image_shape=cfg["image_shape"], num_classes=cfg["num_classes"],
                                                   config=config)).to(device)
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
            shards[data] = load_shard(data, device)
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


def _run_stage(runner: StageRunner, plan: StagePlan, x, y, *, start: int, stage_index: int, state: dict,
               cfg: dict, config, rank: int, monitor) -> None:
    import ray

    gen = torch.Generator().manual_seed(config.seed * 1_000_003 + stage_index * 7919 + rank * 104_729 + start)
    every = max(1, plan.steps // PROGRESS_LINES)
    loss_sum = torch.zeros(2, dtype=torch.float64)
    fault = cfg["fault"]
    for step in range(start + 1, plan.steps + 1):
        if plan.private and rank == 0:
            ray.get(monitor.charge.remote(plan.name))    # durable before the step touches the data
        idx = poisson_batch(len(x), sample_rate=plan.sample_rate, generator=gen)
        ls, n = runner.step(x[idx], None if y is None else y[idx])
        loss_sum += torch.tensor([ls, n], dtype=torch.float64)
        if fault["step"] and plan.name == fault["stage"] and step == fault["step"]:
            raise SimulatedFault(f"simulated crash after step {step} of stage {plan.name}")
        last = step == plan.steps
        if step % every == 0 or last:
            if rank == 0:
                monitor.report.remote(plan.name, step, plan.steps, float(loss_sum[0] / max(float(loss_sum[1]), 1.0)),
                                      plan.private)
            state["history"].append({"stage": plan.name, "step": step,
                                     "loss": float(loss_sum[0] / max(float(loss_sum[1]), 1.0))})
            loss_sum.zero_()
        if step % config.checkpoint_every == 0 or last:
            _save({"stage": stage_index + 1 if last else stage_index, "step": 0 if last else step,
                   "history": state["history"], "model": runner.model.state_dict(),
                   "optimizer": None if last else runner.base_optimizer.state_dict()},
                  {"stage": plan.name, "step": step}, rank=rank)
