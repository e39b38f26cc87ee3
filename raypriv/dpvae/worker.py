"""The per-worker Ray Train loop of DP-VAE training (see :mod:`raypriv.dpvae.train`)."""
from __future__ import annotations

import functools
from typing import Any

import torch

from raypriv.privacy.dpsgd import StagePlan, StageRunner, poisson_batch
from raypriv.privacy.rng import reseed, secret_generator, secret_seed

#: Progress lines per stage (rank 0 prints loss and ε spent about this often).
PROGRESS_LINES = 10


def load_worker_shard(worker, name: str, *, key: int, rows: int) -> tuple:
    """This worker's rows of dataset ``name`` (every row in exactly one worker's shard, by a
    keyed hash of its id: :meth:`raypriv.runtime.train.WorkerContext.shard`) as float NCHW
    images in [0, 1] and labels. Checks that the shards add up to all ``rows`` (no row
    dropped, none twice)."""
    from raypriv.models import to_float_nchw

    device, world = worker.device, worker.world
    images, labels = worker.shard(name, key=key, what=f"DP-VAE {name} set")
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


def stage_starts(plans: list[StagePlan], *, checkpoint_stage: int, checkpoint_step: int,
                 charged: dict[str, int]) -> dict[int, int]:
    """Where each stage still to run starts: ``{stage index: steps already done}``.

    Stages before the checkpoint's are done. A private stage continues after its last
    *charged* step, even when that is past the checkpoint: a step charged but lost in a crash
    is paid for and never re-run (re-running it would spend budget the ledger never granted).
    A non-private stage continues from its checkpoint.

    >>> from raypriv.privacy.dpsgd import StagePlan
    >>> plans = [StagePlan(name=n, steps=10, sample_rate=0.1, sigma=1.0, max_grad_norm=1.0, lr=0.01)
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

    from raypriv.dpvae.config import DPVAEConfig
    from raypriv.dpvae.models import build_vae, elbo_loss, model_kwargs
    from raypriv.runtime.train import report, restore, worker_context

    config = DPVAEConfig.from_dict(cfg["config"])
    # identical initial weights on every rank: all the seed decides
    worker = worker_context(cfg, seed=config.seed)
    rank, world, device = worker.rank, worker.world, worker.device
    model = build_vae(config.model, **model_kwargs(image_shape=cfg["image_shape"], num_classes=cfg["num_classes"],
                                                   config=config)).to(device)
    torch.manual_seed(secret_seed())  # the VAE's latent draws while training: not from the recorded seed
    plans = [StagePlan(**{**p, "freeze": tuple(p["freeze"])}) for p in cfg["plans"]]
    state = restore() or {"stage": 0, "step": 0, "history": []}
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
            shards[data] = load_worker_shard(worker, data, key=cfg["shard_key"], rows=cfg["true_rows"][data])
        x, y = shards[data]
        resumed = i == state["stage"]
        runner = StageRunner(model, plan, world_size=world, grad_sample_mode=config.grad_sample_mode,
                             loss_fn=functools.partial(elbo_loss, beta=config.beta),
                             optimizer_state=state.get("optimizer") if resumed else None)
        runner.attach(global_rows=cfg["rows"][data])
        _run_stage(runner, plan, x, y if model.num_classes else None, start=start, stage_index=i, state=state,
                   cfg=cfg, config=config, rank=rank, monitor=monitor)
        runner.detach()
    report({"stage": "done", "step": 0}, rank=rank,
           state={"stage": len(plans), "step": 0, "history": state["history"], "model": model.state_dict()})


def _run_stage(runner: StageRunner, plan: StagePlan, x, y, *, start: int, stage_index: int, state: dict,
               cfg: dict, config, rank: int, monitor) -> None:
    import ray

    from raypriv.runtime.train import report

    sampler = SecretPoissonSampler(len(x), sample_rate=plan.sample_rate)
    every = max(1, plan.steps // PROGRESS_LINES)
    loss_sum = torch.zeros(2, dtype=torch.float64)
    hook = cfg["step_hook"]
    for step in range(start + 1, plan.steps + 1):
        if plan.private and rank == 0:
            ray.get(monitor.charge.remote(plan.name))    # durable before the step touches the data
        idx = sampler.draw()
        if hook is not None:
            hook(stage=plan.name, step=step, output=cfg["output"])
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
            report({"stage": plan.name, "step": step}, rank=rank,
                   state={"stage": stage_index + 1 if last else stage_index, "step": 0 if last else step,
                          "history": state["history"], "model": runner.model.state_dict(),
                          "optimizer": None if last else runner.base_optimizer.state_dict()})
