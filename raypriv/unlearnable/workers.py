"""Ray-side work of one round: the PGD actor for Ray Data and the surrogate-training task.

The surrogate's weights reach each actor once per round through the object store
(:func:`raypriv.runtime.pool.pool_map`); batches then carry only data.
"""
from __future__ import annotations

import numpy as np

from raypriv.errors import DataError
from raypriv.hashing import id_uniform
from raypriv.models import build_from_payload, to_float_nchw, worker_device
from raypriv.runtime.pool import PoolWorker


class NoiseUpdater(PoolWorker):
    """Ray Data callable class: error-minimizing PGD over a batch with a frozen surrogate.

    ``task="pgd"``: sample-wise mode returns the batch with updated ``noise``, a ``correct``
    flag (surrogate prediction on the new perturbed image) and the surrogate's cross-entropy
    on the image before (``loss_before``) and after (``loss_after``) this pass's PGD; class-wise
    mode returns per-class sums and counts of the per-sample PGD results (exact reduction) and
    the summed ``loss_before`` under the old class noise.
    ``task="eval"``: returns ``correct`` and ``loss`` for images perturbed by the current class noise.
    """

    def setup(self, payload: dict, *, mode: str, task: str, epsilon: float, step_size: float, steps: int):
        import torch

        self.model = build_from_payload(payload, self.device).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        cn = payload.get("class_noise")
        self.class_noise = None if cn is None else torch.as_tensor(cn, device=self.device).permute(0, 3, 1, 2)
        self.mode, self.task = mode, task
        self.kw = dict(epsilon=epsilon, step_size=step_size, steps=steps)
        self.num_classes = payload["model_kwargs"]["num_classes"]

    def __call__(self, batch: dict) -> dict:
        import torch

        from raypriv.unlearnable.pgd import min_min_pgd, per_sample_loss, to_float

        x = to_float(batch["image"], self.device)
        y = torch.as_tensor(batch["label"], device=self.device).long()
        if self.mode == "samplewise":
            noise = to_float_noise(batch["noise"], self.device)
        else:
            noise = self.class_noise[y]
        before, correct = per_sample_loss(self.model, (x + noise).clamp(0, 1), y)
        if self.task == "eval":
            return {"correct": correct.cpu().numpy().astype(np.int64), "loss": before.cpu().numpy()}
        delta = min_min_pgd(self.model, x, y, noise, **self.kw)
        if self.mode == "samplewise":
            after, correct = per_sample_loss(self.model, (x + delta).clamp(0, 1), y)
            batch["noise"] = delta.permute(0, 2, 3, 1).cpu().numpy().astype(np.float32)
            batch["correct"] = correct.cpu().numpy().astype(np.int64)
            batch["loss_before"], batch["loss_after"] = before.cpu().numpy(), after.cpu().numpy()
            return batch
        sums = _class_sums(delta.permute(0, 2, 3, 1).cpu().numpy(), batch["label"], self.num_classes)
        sums["loss_before"] = np.array([before[y == c].sum().item() for c in sums["label"]], dtype=np.float64)
        return sums


def to_float_noise(noise_nhwc, device):
    import torch

    return torch.as_tensor(np.asarray(noise_nhwc, dtype=np.float32), device=device).permute(0, 3, 1, 2)


def _class_sums(delta_nhwc: np.ndarray, labels: np.ndarray, num_classes: int) -> dict:
    """Per-class float64 sums and counts of a batch's per-sample noise (one output row per class present)."""
    classes = np.unique(labels)
    sums = np.stack([delta_nhwc[labels == c].astype(np.float64).sum(axis=0) for c in classes])
    counts = np.array([(labels == c).sum() for c in classes], dtype=np.int64)
    return {"label": classes.astype(np.int64), "count": counts, "delta_sum": sums}


def select_training_rows(block, *, seed: int, round_index: int, fraction: float) -> dict:
    """The rows of one block drawn for this round's surrogate training (a pure function of id, seed, round).

    Runs as a small Ray task per block of the materialized working dataset."""
    from ray.data.block import BlockAccessor

    batch = BlockAccessor.for_block(block).to_numpy()
    u = id_uniform(batch["id"], seed=seed, salt=f"train-{round_index}")
    keep = u < fraction
    out = {k: np.asarray(batch[k])[keep] for k in ("image", "label", "noise") if k in batch}
    out["order"] = u[keep]
    return out


def train_surrogate_round(sample_refs: list, *, payload: dict, optim_state: dict | None, cfg: dict,
                          use_gpu: bool, threads: int) -> dict:
    """Train the surrogate for ``cfg['train_steps']`` batches on the currently perturbed data.

    Runs as one Ray task on the rows drawn by :func:`select_training_rows` (``sample_refs``
    holds one reference per block), ordered by their hash, so the batches are identical
    however the dataset's blocks are laid out (which makes resume exact). Returns the new
    payload and optimizer state plus the mean loss/accuracy seen.
    """
    import ray
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(max(1, threads))
    device = worker_device(use_gpu)
    steps, bs = cfg["train_steps"], cfg["train_batch_size"]
    parts = [p for p in ray.get(list(sample_refs)) if len(p["label"])]
    if not parts:
        raise DataError("no rows drawn for surrogate training: the corpus is empty")
    rows = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    order = np.argsort(rows["order"], kind="stable")
    x = to_float_nchw(rows["image"][order])
    y = torch.as_tensor(rows["label"][order]).long()
    if cfg["mode"] == "samplewise":
        noise = torch.as_tensor(rows["noise"][order]).permute(0, 3, 1, 2)
    else:
        noise = torch.as_tensor(np.array(payload["class_noise"])).permute(0, 3, 1, 2)[y]
    x = (x + noise).clamp_(0, 1)

    model = build_from_payload(payload, device).train()
    opt = torch.optim.SGD(model.parameters(), lr=cfg["lr"], momentum=cfg["momentum"], weight_decay=cfg["weight_decay"])
    if optim_state is not None:
        opt.load_state_dict(optim_state)
    losses, correct, seen = [], 0, 0
    n = len(y)
    for step in range(steps):
        idx = torch.arange(step * bs, step * bs + bs) % n
        xb, yb = x[idx].to(device), y[idx].to(device)
        logits = model(xb)
        loss = F.cross_entropy(logits, yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
        correct += (logits.argmax(1) == yb).sum().item()
        seen += len(yb)
    if cfg.get("recalibrate_bn"):
        recalibrate_batchnorm(model, x, batch_size=bs, device=device)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    return {"payload": {**payload, "state": state}, "optim": opt.state_dict(),
            "train_loss": float(np.mean(losses)), "train_acc": correct / max(1, seen)}


def recalibrate_batchnorm(model, x, *, batch_size: int, device) -> None:
    """Replace BatchNorm running statistics by exact averages over ``x`` (train-mode forward, no grad).

    After only a few SGD steps from fresh weights the running averages still remember their
    initial values, and the frozen (eval-mode) surrogate that PGD attacks behaves nothing like
    the network that was trained; re-estimating them on the round's sample fixes that."""
    import torch

    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None   # cumulative moving average: exact mean over the batches seen
    model.train()
    with torch.no_grad():
        for i in range(0, len(x), batch_size):
            model(x[i:i + batch_size].to(device))
    for m, mom in zip(bns, momenta):
        m.momentum = mom
