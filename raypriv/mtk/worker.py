"""The MTK training loop that runs on every Ray Train worker, and its loss.

Per batch of expanded rows (images, true labels of every task, ``key_mask``):

* unsecured task t: ``CE(head_t(x), y_t)``;
* secured task s, on rows whose key mask has s: ``CE(head_s(x), y_s)``; on the others an
  uninformative target: the extra *locked* output (``target="locked"``), a uniformly random
  class drawn afresh each time the row is seen (``target="random"``) or the uniform
  distribution (``target="uniform"``);
* with λ > 0, on rows carrying no true key, once the gate has formed (:func:`gate_formed`): the
  decoupling term of :mod:`raypriv.mtk.decouple` (by default what the secured labels explain of the
  unsecured logits inside the cells of equal true unsecured labels).

>>> import torch
>>> from raypriv.mtk.config import TaskLayout
>>> layout = TaskLayout(("digit", "parity"), (10, 2), ("digit",))
>>> labels = torch.tensor([[3, 1], [4, 0]]); mask = torch.tensor([1, 0])
>>> targets, true = secured_targets(labels, mask, layout, gen=torch.Generator().manual_seed(0))
>>> targets[0][0].item(), true[0].tolist(), targets[1].tolist()
(3, [True, False], [1, 0])
"""
from __future__ import annotations

import math
import time
from typing import Any

from raypriv.errors import RayprivError
from raypriv.mtk.config import MtkConfig, TaskLayout
from raypriv.mtk.decouple import GroupMemory, decoupling_loss, uses_adversary

#: Keeps the random-target generator's stream apart from the batch-order generator's.
TARGET_SEED_OFFSET = 7_368_787


def build_trainee(model, layout: TaskLayout, *, adversary: bool):
    """The network and, with ``adversary`` (the ``uniform`` decoupling target), the decoupling
    adversary, as one module (one DDP wrapper)."""
    import torch.nn as nn

    class Trainee(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = model
            unsecured = sum(layout.num_classes[i] for i in layout.unsecured_index)
            self.adversary = nn.ModuleList(nn.Linear(unsecured, layout.num_classes[i]) for i in layout.secured_index) \
                if adversary and unsecured else None

        def forward(self, x):
            import torch

            logits = self.net(x)
            if self.adversary is None:
                return logits, None
            import torch.nn.functional as F

            seen = torch.cat([logits[i] for i in layout.unsecured_index], dim=1)
            learn = [a(seen.detach()) for a in self.adversary]                   # trains the adversary
            confuse = [F.linear(seen, a.weight.detach(), a.bias.detach()) for a in self.adversary]  # the network
            return logits, (learn, confuse)

    return Trainee()


def secured_targets(labels, mask, layout: TaskLayout, *, gen) -> tuple[list, list]:
    """Per task, the targets of a batch and which rows' targets are the true labels.

    ``labels`` is ``(B, T)`` in head order, ``mask`` the key masks; a secured task's rows without
    its key get the locked output when ``layout.locked``, else a uniformly random class from
    ``gen`` (used as such by ``target="random"``)."""
    import torch

    targets, true = [], []
    secured = {t: j for j, t in enumerate(layout.secured_index)}
    for t in range(len(layout.names)):
        y = labels[:, t]
        if t not in secured:
            targets.append(y)
            true.append(torch.ones_like(y, dtype=torch.bool))
            continue
        keyed = ((mask >> secured[t]) & 1).bool()
        if layout.locked:
            noise = torch.full_like(y, layout.num_classes[t])
        else:
            noise = torch.randint(0, layout.num_classes[t], y.shape, generator=gen).to(y.device)
        targets.append(torch.where(keyed, y, noise))
        true.append(keyed)
    return targets, true


def gate_attack(net, x, labels, layout: TaskLayout, *, support, amplitude: float, steps: int, gen):
    """Images ``x`` (float NCHW in [0, 1]) with the patterns a key search finds: ``steps`` signed
    gradient steps from a random start on ``support`` (a ``C x H x W`` 0/1 tensor) within
    ``±amplitude`` (in [0, 1] units), raising the secured heads' true-label likelihood."""
    import torch
    import torch.nn.functional as F

    delta = (torch.rand(x.shape, generator=gen).to(x.device) * 2 - 1) * amplitude * support
    for _ in range(steps):
        d = delta.detach().requires_grad_(True)
        out = net((x + d).clamp(0, 1))
        loss = sum(F.cross_entropy(out[s], labels[:, s]) for s in layout.secured_index)
        (grad,) = torch.autograd.grad(loss, d)
        delta = ((delta - amplitude / 4 * grad.sign()) * support).clamp(-amplitude, amplitude)
    return (x + delta.detach()).clamp(0, 1)


def with_gate_attack(inner, x, rows, layout: TaskLayout, mc: MtkConfig, *, support, amplitude: float, gen):
    """The batch with hardening rows appended: a ``gate_attack_share`` of its un-keyed rows with
    the key search's patterns, and key mask 0 (so their secured targets are 'locked')."""
    import torch

    plain = torch.nonzero(rows[:, -1] == 0).flatten()
    take = plain[torch.randperm(len(plain), generator=gen)[:max(1, int(len(plain) * mc.gate_attack_share))]
                 .to(plain.device)]
    if not len(take):
        return x, rows
    was = inner.training
    inner.eval()
    attacked = gate_attack(inner, x[take], rows[take, :-1], layout, support=support, amplitude=amplitude,
                           steps=mc.gate_attack_steps, gen=gen)
    inner.train(was)
    return torch.cat([x, attacked]), torch.cat([rows, rows[take]])


def mtk_loss(logits, adversary, labels, mask, layout: TaskLayout, cfg: MtkConfig, *, gen,
             decoupling: float | None = None, memory=None):
    """The batch loss (see the module docstring) and ``(correct, counted)`` per task on true targets;
    ``decoupling``: the decoupling term's weight now (default ``cfg.decoupling``; 0 until the gate
    has formed); ``memory``: the ``secured`` term's :class:`raypriv.mtk.decouple.GroupMemory`."""
    import torch
    import torch.nn.functional as F

    targets, true = secured_targets(labels, mask, layout, gen=gen)
    loss = logits[0].new_zeros(())
    correct, counted = [], []
    for t, (out, y, ok) in enumerate(zip(logits, targets, true)):
        if cfg.target == "uniform" and t in layout.secured_index:
            ce = F.cross_entropy(out, y, reduction="none")
            ce = torch.where(ok, ce, -F.log_softmax(out, dim=1).mean(dim=1))
            loss = loss + ce.mean()
        else:
            loss = loss + F.cross_entropy(out, y)
        correct.append(int((out.argmax(1) == labels[:, t])[ok].sum()))
        counted.append(int(ok.sum()))
    if cfg.decoupling > 0 and layout.secured and layout.unsecured_index:
        loss = loss + decoupling_loss(logits, adversary, labels, mask, layout, cfg, weight=decoupling,
                                      memory=memory)
    return loss, correct, counted


def train_loop(cfg: dict) -> None:
    """Per-worker training function (runs inside a Ray Train worker)."""
    import ray.train.torch
    import torch

    from raypriv.classifier.train import epoch_batches, lr_at, make_optimizer
    from raypriv.models import build_model, to_float_nchw
    from raypriv.runtime.train import report, restore, worker_context

    mc = MtkConfig(**{**cfg["mtk"], "train": _victim(cfg["mtk"]["train"])})
    vc, layout = mc.train, TaskLayout.from_dict(cfg["layout"])
    worker = worker_context(cfg, seed=vc.seed)
    trainee = build_trainee(build_model(vc.model, **cfg["model_kwargs"]), layout, adversary=uses_adversary(mc))
    trainee = ray.train.torch.prepare_model(trainee)
    inner = getattr(trainee, "module", trainee)
    opt = make_optimizer(trainee.parameters(), vc)
    images, table = worker.shard("train", what="MTK training set", columns=(*cfg["columns"], "key_mask"))
    state = restore(weights_only=False) or {"epoch": 0, "history": []}
    if "trainee" in state:
        inner.load_state_dict(state["trainee"])
        opt.load_state_dict(state["optim"])
    device = next(inner.parameters()).device
    memory = _group_memory(mc)
    if memory is not None and "decoupling_memory" in state:
        memory.load_state_dict(state["decoupling_memory"], device=device)
    support = torch.as_tensor(cfg["key_support"], dtype=torch.float32, device=device).permute(2, 0, 1)
    amplitude = cfg["key_amplitude"] / 255.0
    for epoch in range(state["epoch"], vc.epochs):
        # generators per epoch, so a resumed run draws what the uninterrupted one would have
        order_gen = torch.Generator().manual_seed((vc.seed * 7919 + worker.rank) * 1_000 + epoch)
        target_gen = torch.Generator().manual_seed((vc.seed * 7919 + worker.rank + TARGET_SEED_OFFSET) * 1_000 + epoch)
        for group in opt.param_groups:
            group["lr"] = lr_at(vc, epoch)
        hardening = hardening_on(state["history"], layout, mc)
        decoupling = mc.decoupling if gate_formed(state["history"], layout, mc) else 0.0
        trainee.train()
        started = time.perf_counter()
        stats = torch.zeros(2 + 2 * len(layout.names), dtype=torch.float64)
        for idx in epoch_batches(len(table), batch_size=cfg["batch_per_worker"], drop_last=True, gen=order_gen,
                                 rows_per_epoch=cfg["rows_per_epoch"]):
            x = to_float_nchw(images[idx].to(device))
            rows = table[idx].to(device)
            if hardening:
                x, rows = with_gate_attack(inner.net, x, rows, layout, mc, support=support, amplitude=amplitude,
                                           gen=target_gen)
            logits, adversary = trainee(x)
            loss, correct, counted = mtk_loss(logits, adversary, rows[:, :-1], rows[:, -1], layout, mc,
                                              gen=target_gen, decoupling=decoupling, memory=memory)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            stats += torch.tensor([loss.item() * len(idx), len(idx), *correct, *counted], dtype=torch.float64)
        if worker.world > 1:
            torch.distributed.all_reduce(stats)
        record = {**_epoch_record(epoch, stats, layout), "seconds": round(time.perf_counter() - started, 3),
                  "hardening": hardening, "decoupling": decoupling}
        if not math.isfinite(record["loss"]):     # every rank sees the all-reduced loss: all stop together
            raise RayprivError(f"MTK training diverged in epoch {epoch + 1} (the loss is not finite); nothing "
                               f"was saved from it: lower train.lr ({vc.lr:g}) or decoupling ({mc.decoupling:g})")
        state = {"epoch": epoch + 1, "history": state["history"] + [record], "model": inner.net.state_dict(),
                 "trainee": inner.state_dict(), "optim": opt.state_dict(), "run": cfg["run"]}
        if memory is not None:
            state["decoupling_memory"] = memory.state_dict()
        report(record_metrics(record), rank=worker.rank, state=state)
        if cfg.get("epoch_hook") is not None:
            cfg["epoch_hook"](epoch=epoch + 1, rank=worker.rank)


def _group_memory(mc: MtkConfig) -> GroupMemory | None:
    """The ``secured`` term's memory across steps and workers, if the run uses one."""
    if mc.decoupling > 0 and mc.decoupling_target == "secured" and mc.decoupling_rows > 0:
        return GroupMemory(rows=mc.decoupling_rows)
    return None


def gate_formed(history: list[dict], layout: TaskLayout, mc: MtkConfig) -> bool:
    """Whether an earlier epoch had every secured task at ``gate_attack_after`` keyed training
    accuracy: from then on the gate is hardened and the decoupling term runs. Both wait for a
    network that has learned its tasks: the hardening keeps the gate from forming at all, and
    decoupling outputs that are still near-constant kept one ``mnist5k-pairs`` run at chance for
    12 of its 20 epochs (README "MTK")."""
    return bool(layout.secured) and any(min(h["acc"][t] for t in layout.secured) >= mc.gate_attack_after
                                        for h in history)


def hardening_on(history: list[dict], layout: TaskLayout, mc: MtkConfig) -> bool:
    """Whether this epoch runs the in-training key search: with ``gate_attack_steps``, once the
    gate has formed (:func:`gate_formed`)."""
    return bool(mc.gate_attack_steps) and gate_formed(history, layout, mc)


def _victim(d: dict):
    from raypriv.classifier.config import VictimConfig

    return VictimConfig(**d)


def _epoch_record(epoch: int, stats, layout: TaskLayout) -> dict[str, Any]:
    n = len(layout.names)
    values = stats.tolist()
    correct, counted = values[2:2 + n], values[2 + n:]
    return {"epoch": epoch + 1, "loss": values[0] / max(values[1], 1),
            "acc": {t: c / max(k, 1) for t, c, k in zip(layout.names, correct, counted)}}


def record_metrics(record: dict) -> dict[str, float]:
    """An epoch record as the flat metrics Ray Train (and a Tune trial) receive."""
    return {"epoch": record["epoch"], "loss": record["loss"], **{f"train_acc.{t}": v for t, v in record["acc"].items()}}
