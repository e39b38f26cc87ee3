"""Train a fresh victim classifier with Ray Train and measure its clean test accuracy.

The job is a Ray Train ``TorchTrainer`` with ``resources.workers`` data-parallel
workers (DDP; gloo on CPU, NCCL on GPU). Both corpora are handed to the trainer via
``datasets=``; the driver never collects them. Both sets are materialized in the object
store first (distributed, not collected), so upstream transforms such as a JPEG defense run
once. The training set is split between the workers by a hash of each row id
(:func:`raypriv.shards.load_shard`: every worker reads the set once and keeps its share in memory as uint8,
ordered by id), and each epoch every worker draws ``rows // workers`` rows from a fresh
permutation of its share (:func:`epoch_batches`), so all workers take the same number of
steps. That is a real shuffle whatever order the corpus was written in (generated corpora
are written class by class, and a streaming shuffle buffer over class-sorted rows trains on
batches of one or two classes), and the same seed trains the same model on any run, however
Ray Data happened to order the blocks. The test set is *not* split: after the last epoch the
rank-0 worker evaluates the whole test set, so the reported accuracy is over every test row
exactly once.

Per epoch, every worker reports ``{epoch, lr, loss, train_acc}`` (summed over workers)
with ``ray.train.report``; the last report carries a checkpoint with the model weights
(``model.pt``) and ``test_acc``. ``train_acc`` is the running accuracy on the
(augmented) training batches of the epoch.
"""
from __future__ import annotations

import dataclasses
import math
import os
import uuid
from typing import TYPE_CHECKING, Any

from raypriv.errors import DataError
from raypriv.classifier.config import DistillConfig, VictimConfig
from raypriv.models import to_float_nchw

if TYPE_CHECKING:  # pragma: no cover
    from raypriv.data.corpus import Corpus
    from raypriv.runtime import ResourceSpec


#: The file of the final checkpoint that holds the classifier's weights (a ``state_dict``).
WEIGHTS_FILE = "model.pt"
#: Keeps the epoch-order generator's stream apart from the augmentation generator's.
ORDER_SEED_OFFSET = 104_729


@dataclasses.dataclass(frozen=True)
class VictimResult:
    """Outcome of one victim training run.

    ``test_acc``: accuracy on the full (clean) test set after the last epoch.
    ``train_acc``: running accuracy on the augmented training batches of the last epoch.
    ``history``: one dict per epoch (``epoch``, ``lr``, ``loss``, ``train_acc``).
    ``checkpoint_path``: directory of the final checkpoint (``model.pt``), if persisted.
    """

    test_acc: float
    train_acc: float
    epochs: int
    history: list[dict[str, float]]
    checkpoint_path: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def train_victim(train: "Corpus", test: "Corpus", *, config: VictimConfig, resources: "ResourceSpec",
                 storage_path: str, name: str | None = None, teacher: dict | None = None,
                 distill: DistillConfig | None = None) -> VictimResult:
    """Train ``config.model`` from scratch on ``train`` and return its accuracy on ``test``.

    ``storage_path`` is where Ray Train keeps the run (``<storage_path>/<name>``); ``name``
    defaults to a fresh ``victim-<random>`` so that runs never resume each other.
    With ``teacher`` (a :class:`~raypriv.models.ModelPayload`), the victim
    learns the teacher's soft labels (``distill``, default :class:`DistillConfig`)."""
    _check_corpora(train, test)
    from raypriv.runtime.train import TrainingError, fit

    run_name = f"{name or 'victim'}-{uuid.uuid4().hex[:8]}"
    train_ds = train.ds.select_columns(["id", "image", "label"]).materialize()
    result = fit(_train_loop, config=_loop_config(train, rows=train_ds.count(), config=config, resources=resources,
                                                  teacher=teacher, distill=distill),
                 resources=resources, storage_path=storage_path, name=run_name, what="classifier",
                 datasets={"train": train_ds, "test": test.ds.select_columns(["image", "label"]).materialize()})
    out = result.return_value
    if not out:
        raise TrainingError(f"classifier run {run_name} returned no result")
    ckpt = result.checkpoint.path if result.checkpoint is not None else None
    return VictimResult(test_acc=out["test_acc"], train_acc=out["history"][-1]["train_acc"],
                        epochs=len(out["history"]), history=out["history"], checkpoint_path=ckpt)


def train_victim_payload(train: "Corpus", test: "Corpus", *, config: VictimConfig, resources: "ResourceSpec",
                         storage_path: str, **kwargs) -> dict[str, Any]:
    """:func:`train_victim` (``kwargs`` passed on), then the trained weights as a model payload
    (:class:`~raypriv.models.ModelPayload`): returns ``{"test_acc", "payload", "checkpoint"}``
    (the Ray Train checkpoint directory holding ``model.pt``)."""
    import torch

    res = train_victim(train, test, config=config, resources=resources, storage_path=storage_path, **kwargs)
    from raypriv.models import ModelPayload

    state = torch.load(os.path.join(res.checkpoint_path, WEIGHTS_FILE), map_location="cpu", weights_only=True)
    payload = ModelPayload(model=config.model, state=state,
                           model_kwargs=ModelPayload.image_kwargs(train.info.image_shape, train.info.num_classes))
    return {"test_acc": res.test_acc, "payload": payload, "checkpoint": res.checkpoint_path}


def _check_corpora(train: "Corpus", test: "Corpus") -> None:
    a, b = train.info, test.info
    if tuple(a.image_shape) != tuple(b.image_shape):
        raise DataError(f"image shape {tuple(b.image_shape)} differs from the training set's "
                        f"{tuple(a.image_shape)}", item=f"test corpus {b.source!r}")
    if a.num_classes != b.num_classes:
        raise DataError(f"{b.num_classes} classes, the training set has {a.num_classes}",
                        item=f"test corpus {b.source!r}")
    if a.num_rows < 1 or b.num_rows < 1:
        raise DataError("empty corpus", item=f"{a.source!r} / {b.source!r}")


def _loop_config(train: "Corpus", *, rows: int, config: VictimConfig, resources: "ResourceSpec",
                 teacher: dict | None = None, distill: DistillConfig | None = None) -> dict:
    import ray

    h, w, c = (int(v) for v in train.info.image_shape)
    batch = max(1, config.batch_size // resources.workers)
    rows_per_worker = max(1, rows // resources.workers)
    return {
        "victim": dataclasses.asdict(config),
        "image_shape": (h, w, c),
        "num_classes": int(train.info.num_classes),
        "batch_per_worker": batch,
        "rows_per_epoch": rows_per_worker,
        "pad": max(1, h // 8),
        "hflip": config.flip_for(c),
        "distill": None if teacher is None else {**dataclasses.asdict(distill or DistillConfig()),
                                                 "teacher_ref": [ray.put(teacher)]},
    }


def lr_at(config: VictimConfig, epoch: int) -> float:
    """The learning rate of (0-based) ``epoch`` under ``config.schedule``."""
    if config.schedule == "cosine":
        return config.lr * 0.5 * (1 + math.cos(math.pi * epoch / config.epochs))
    if config.schedule == "step":
        return config.lr * (0.1 ** sum(epoch >= m * config.epochs for m in (0.5, 0.75)))
    return config.lr


def _train_loop(cfg: dict) -> dict | None:
    """Per-worker training function (runs inside a Ray Train worker)."""
    import ray.train.torch
    import torch

    from raypriv.models import build_model
    from raypriv.runtime.train import report, worker_context

    vc = VictimConfig(**cfg["victim"])
    worker = worker_context(cfg, seed=vc.seed)
    rank, world = worker.rank, worker.world
    h, w, c = cfg["image_shape"]
    model = build_model(vc.model, in_channels=c, num_classes=cfg["num_classes"], image_size=h)
    model = ray.train.torch.prepare_model(model)
    opt = make_optimizer(model.parameters(), vc)
    gen = torch.Generator().manual_seed(vc.seed * 7919 + rank)
    order_gen = torch.Generator().manual_seed(vc.seed * 7919 + rank + ORDER_SEED_OFFSET)
    shard = worker.shard("train", what="classifier training set")
    if cfg["distill"]:
        from raypriv.models import build_from_payload

        device = next(model.parameters()).device
        cfg = {**cfg, "teacher": build_from_payload(ray.get(cfg["distill"]["teacher_ref"][0]), device).eval()}
    history = []
    for epoch in range(vc.epochs):
        for group in opt.param_groups:
            group["lr"] = lr_at(vc, epoch)
        stats = _train_epoch(model, opt, shard, cfg=cfg, vc=vc, gen=gen, order_gen=order_gen)
        if world > 1:
            torch.distributed.all_reduce(stats)
        loss_sum, correct, count = stats.tolist()
        record = {"epoch": epoch + 1, "lr": lr_at(vc, epoch), "loss": loss_sum / max(count, 1),
                  "train_acc": correct / max(count, 1)}
        history.append(record)
        if epoch < vc.epochs - 1:
            report(record, rank=rank)
    test_acc = _evaluate(model, cfg=cfg, vc=vc) if rank == 0 else float("nan")
    report({**history[-1], "test_acc": test_acc}, rank=rank, state=getattr(model, "module", model).state_dict(),
           filename=WEIGHTS_FILE)
    return {"test_acc": test_acc, "history": history} if rank == 0 else None


def epoch_batches(num_rows: int, *, batch_size: int, drop_last: bool, gen, rows_per_epoch: int | None = None) -> list:
    """Index tensors of one epoch: ``rows_per_epoch`` (default ``num_rows``) indices from fresh
    permutations of ``range(num_rows)`` drawn from ``gen`` (another permutation follows when one
    runs out), cut into batches of ``batch_size`` (the short last one dropped if ``drop_last`` and
    there is a full one).

    >>> import torch
    >>> [b.tolist() for b in epoch_batches(5, batch_size=2, drop_last=True, gen=torch.Generator().manual_seed(0))]
    [[4, 0], [1, 3]]
    >>> [len(b) for b in epoch_batches(3, batch_size=2, drop_last=False, gen=torch.Generator(), rows_per_epoch=5)]
    [2, 2, 1]
    """
    import torch

    want = num_rows if rows_per_epoch is None else rows_per_epoch
    perms = [torch.randperm(num_rows, generator=gen) for _ in range(-(-want // num_rows))]
    order = torch.cat(perms)[:want]
    stop = want - want % batch_size if drop_last and want >= batch_size else want
    return [order[k:min(k + batch_size, stop)] for k in range(0, stop, batch_size)]


def _train_epoch(model, opt, shard, *, cfg: dict, vc: VictimConfig, gen, order_gen):
    """One epoch: ``cfg["rows_per_epoch"]`` rows of this worker's in-memory shard in a fresh
    order; returns tensor ``[loss_sum, correct, count]``."""
    import torch
    import torch.nn.functional as F

    model.train()
    device = next(model.parameters()).device
    images, labels = shard
    stats = torch.zeros(3, dtype=torch.float64)
    for idx in epoch_batches(len(labels), batch_size=cfg["batch_per_worker"], drop_last=True,
                             gen=order_gen, rows_per_epoch=cfg["rows_per_epoch"]):
        x = to_float_nchw(images[idx].to(device))
        y = labels[idx].to(device)
        if vc.augment:
            x = augment(x, pad=cfg["pad"], flip=cfg["hflip"], gen=gen)
        if cfg.get("teacher") is not None:
            logits, loss = _distill_step(model, cfg["teacher"], x, cfg["distill"], gen)
        else:
            logits = model(x)
            loss = F.cross_entropy(logits, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        stats += torch.tensor([loss.item() * len(y), (logits.argmax(1) == y).sum().item(), len(y)],
                              dtype=torch.float64)
    return stats


def _distill_step(model, teacher, x, d: dict, gen):
    """Student logits and the distillation loss on ``x`` mixed with a shuffled copy of itself."""
    import torch
    import torch.nn.functional as F

    if d["mixup_alpha"] > 0:
        beta = torch.distributions.Beta(d["mixup_alpha"], d["mixup_alpha"])
        lam = beta.sample((len(x), 1, 1, 1)).to(x.device)
        x = lam * x + (1 - lam) * x[torch.randperm(len(x), generator=gen).to(x.device)]
    t = d["temperature"]
    with torch.no_grad():
        target = F.softmax(teacher(x) / t, dim=1)
    logits = model(x)
    return logits, F.kl_div(F.log_softmax(logits / t, dim=1), target, reduction="batchmean") * t * t


def make_optimizer(params, vc: VictimConfig):
    """``vc.optimizer`` over ``params`` at ``vc.lr`` (the schedule sets the rate per epoch)."""
    import torch

    if vc.optimizer == "adam":
        return torch.optim.Adam(params, lr=vc.lr, weight_decay=vc.weight_decay)
    return torch.optim.SGD(params, lr=vc.lr, momentum=vc.momentum, nesterov=vc.nesterov, weight_decay=vc.weight_decay)


def augment(x, *, pad: int, flip: bool, gen):
    """Random crop with zero padding ``pad`` and (if ``flip``) random horizontal flips.

    ``gen`` is a CPU ``torch.Generator``; the result is on ``x``'s device."""
    import torch
    import torch.nn.functional as F

    b, _, h, w = x.shape
    if pad > 0:
        padded = F.pad(x, (pad, pad, pad, pad))
        offs = torch.randint(0, 2 * pad + 1, (b, 2), generator=gen).tolist()
        x = torch.stack([padded[i, :, dy:dy + h, dx:dx + w] for i, (dy, dx) in enumerate(offs)])
    if flip:
        mask = (torch.rand(b, generator=gen) < 0.5).to(x.device)
        x = torch.where(mask[:, None, None, None], x.flip(-1), x)
    return x


def _evaluate(model, *, cfg: dict, vc: VictimConfig) -> float:
    """Accuracy of ``model`` over the whole (unsplit) test set."""
    import ray.train
    import torch

    net = getattr(model, "module", model)
    net.eval()
    device = next(net.parameters()).device
    correct = total = 0
    with torch.no_grad():
        for batch in ray.train.get_dataset_shard("test").iter_torch_batches(
                batch_size=vc.eval_batch_size, device=device):
            pred = net(to_float_nchw(batch["image"])).argmax(1)
            correct += int((pred == batch["label"].long()).sum())
            total += len(pred)
    return correct / max(total, 1)
