"""The min-min round loop, distributed: surrogate training task + Ray Data PGD pass per round."""
from __future__ import annotations

import dataclasses
import time
from typing import Callable

import numpy as np

from raypriv.hashing import id_rng
from raypriv.runtime import ResourceSpec
from raypriv.runtime.execute import run
from raypriv.unlearnable import checkpoint as ckpt
from raypriv.unlearnable.config import UnlearnableConfig

# Settings that may change between a run and its resumption without changing the result.
_RESUMABLE_FIELDS = ("max_rounds",)


@dataclasses.dataclass
class NoiseResult:
    """Outcome of noise generation: the working dataset (sample-wise: with a ``noise`` column)
    or the class noise (K×H×W×C, [0, 1] scale), the per-round history and why it stopped."""

    config: UnlearnableConfig
    work: object
    class_noise: np.ndarray | None
    history: list[dict]
    stop_reason: str
    input_fingerprint: str


def initial_samplewise_noise(ids, *, shape: tuple, epsilon: float, seed: int) -> np.ndarray:
    """The random start of sample-wise noise: uniform in [−ε, ε], a pure function of (id, seed)."""
    return np.stack([id_rng(i, seed=seed, salt="init").uniform(-epsilon, epsilon, size=shape)
                     for i in ids]).astype(np.float32)


def initial_class_noise(*, num_classes: int, shape: tuple, epsilon: float, seed: int) -> np.ndarray:
    """The random start of class-wise noise (K×H×W×C, uniform in [−ε, ε])."""
    rng = np.random.default_rng(seed)
    return rng.uniform(-epsilon, epsilon, size=(num_classes, *shape)).astype(np.float32)


def _init_samplewise(batch: dict, *, epsilon: float, seed: int) -> dict:
    batch["noise"] = initial_samplewise_noise(batch["id"], shape=batch["image"].shape[1:], epsilon=epsilon, seed=seed)
    return batch


def _fresh_weights(cfg: UnlearnableConfig, model_kwargs: dict, round_index: int) -> dict:
    import torch

    from raypriv.models import build_model

    torch.manual_seed(cfg.seed * 1_000_003 + round_index)
    return build_model(cfg.surrogate, **model_kwargs).state_dict()


def _fresh_state(corpus, cfg: UnlearnableConfig) -> dict:
    from raypriv.models import ModelPayload

    h, w, c = corpus.info.image_shape
    model_kwargs = ModelPayload.image_kwargs(corpus.info.image_shape, corpus.info.num_classes)
    # the surrogate's payload fields (ModelPayload.of reads them) plus the class noise: one
    # object in the store per pass, checkpointed as a whole between rounds
    payload = {"model": cfg.surrogate, "model_kwargs": model_kwargs, "state": _fresh_weights(cfg, model_kwargs, 0)}
    if cfg.mode == "classwise":
        payload["class_noise"] = initial_class_noise(num_classes=corpus.info.num_classes, shape=(h, w, c),
                                                     epsilon=cfg.epsilon, seed=cfg.seed)
    return {"payload": payload, "optim": None, "history": [], "done": False, "stop_reason": ""}


def pgd_pass(work, payload: dict, cfg: UnlearnableConfig, resources: ResourceSpec, *, task: str):
    """The lazy actor-pool pass of :class:`~raypriv.unlearnable.workers.NoiseUpdater` over ``work``."""
    from raypriv.runtime.pool import pool_map
    from raypriv.unlearnable.workers import NoiseUpdater

    return pool_map(work, NoiseUpdater, resources=resources, batch_size=cfg.pgd_batch_size, shared=payload,
                    options=dict(mode=cfg.mode, task=task, epsilon=cfg.epsilon, step_size=cfg.step_size,
                                 steps=cfg.pgd_steps))


def _classwise_update(work, payload, cfg, resources, class_noise: np.ndarray) -> tuple[np.ndarray, float]:
    """Exact mean of per-sample PGD results per class (sums and counts reduced over all workers),
    and the summed surrogate loss under the old class noise."""
    sums = np.zeros(class_noise.shape, dtype=np.float64)
    counts = np.zeros(class_noise.shape[0], dtype=np.int64)
    loss_before = 0.0
    parts = run(pgd_pass(work, payload, cfg, resources, task="pgd"),
                lambda d: list(d.iter_batches(batch_size=None, batch_format="numpy")))
    for part in parts:
        np.add.at(sums, part["label"], part["delta_sum"])
        np.add.at(counts, part["label"], part["count"])
        loss_before += float(part["loss_before"].sum())
    new = class_noise.astype(np.float64).copy()
    seen = counts > 0
    new[seen] = sums[seen] / counts[seen, None, None, None]
    return np.clip(new, -cfg.epsilon, cfg.epsilon).astype(np.float32), loss_before


def generate_noise(corpus, *, config: UnlearnableConfig, resources: ResourceSpec, checkpoint_dir: str | None,
                   progress: Callable[[str], None] = print) -> NoiseResult:
    """Run min-min rounds until the surrogate's accuracy on perturbed data reaches the stop
    threshold (or ``max_rounds``), checkpointing after every round and resuming from the
    last complete round found in ``checkpoint_dir``."""
    cfg, n = config, corpus.info.num_rows
    fingerprint = corpus.keyed_fingerprint()
    cfg_key = {k: v for k, v in cfg.to_dict().items() if k not in _RESUMABLE_FIELDS}
    state, start, work = _load_or_init(corpus, cfg, resources, checkpoint_dir, cfg_key, fingerprint, progress)
    for r in range(start, cfg.max_rounds):
        if state["done"]:
            break
        t0 = time.perf_counter()
        trained = _train_surrogate(work, state, cfg, resources, r, n)
        t1 = time.perf_counter()
        work, pgd = _update_noise(work, state, cfg, resources, n)
        t2 = time.perf_counter()
        acc = pgd["perturbed_acc"]
        rec = {"round": r + 1, "surrogate_loss": trained["train_loss"], "surrogate_train_acc": trained["train_acc"],
               **pgd, "train_s": t1 - t0, "pgd_s": t2 - t1,
               "pgd_images_steps_per_s": n * cfg.pgd_steps / max(t2 - t1, 1e-9)}
        state["history"].append(rec)
        progress(f"round {r + 1:>3}: surrogate loss {rec['surrogate_loss']:.3f}; PGD took the frozen surrogate's "
                 f"loss from {pgd['perturbed_loss_before']:.3f} to {pgd['perturbed_loss_after']:.3f}, accuracy on "
                 f"perturbed data {acc:.2%} (stop at {cfg.stop_accuracy:.0%}), "
                 f"{rec['pgd_images_steps_per_s']:,.0f} img·step/s")
        if acc >= cfg.stop_accuracy and r + 1 >= cfg.effective_min_rounds:
            state["done"], state["stop_reason"] = True, f"perturbed accuracy {acc:.4f} >= {cfg.stop_accuracy}"
        if checkpoint_dir:
            ckpt.save_round(checkpoint_dir, round_index=r, state=state,
                            work_ds=work if cfg.mode == "samplewise" else None, config=cfg_key,
                            input_fingerprint=fingerprint)
    if not state["done"]:
        state["stop_reason"] = f"max_rounds={cfg.max_rounds} reached"
    return NoiseResult(config=cfg, work=work, class_noise=state["payload"].get("class_noise"),
                       history=state["history"], stop_reason=state["stop_reason"], input_fingerprint=fingerprint)


def _load_or_init(corpus, cfg, resources, checkpoint_dir, cfg_key, fingerprint, progress):
    """(state, first round, working dataset): from the last checkpoint, or fresh."""
    import ray

    meta = ckpt.load_latest(checkpoint_dir, config=cfg_key, input_fingerprint=fingerprint) if checkpoint_dir else None
    if meta:
        state, start = ckpt.load_state(checkpoint_dir, meta), meta["round"] + 1
        work = ray.data.read_parquet(ckpt.work_path(checkpoint_dir, meta)) if cfg.mode == "samplewise" else corpus.ds
        progress(f"resuming from {checkpoint_dir} after round {start}")
    else:
        state, start, work = _fresh_state(corpus, cfg), 0, corpus.ds
        if cfg.mode == "samplewise":
            work = work.map_batches(_init_samplewise, fn_kwargs=dict(epsilon=cfg.epsilon, seed=cfg.seed),
                                    batch_format="numpy")
    # Enough blocks that every actor gets work, about one PGD batch each.
    blocks = max(2 * resources.workers, -(-corpus.info.num_rows // cfg.pgd_batch_size))
    return state, start, work.repartition(blocks).materialize()


def _train_surrogate(work, state: dict, cfg: UnlearnableConfig, resources: ResourceSpec, r: int, n: int) -> dict:
    """Phase 1 of round ``r``: one Ray task trains the surrogate on rows drawn from ``work``."""
    import ray

    from raypriv.runtime import TASK_OPTIONS
    from raypriv.unlearnable.workers import select_training_rows, train_surrogate_round

    if cfg.reinit_surrogate and r > 0:
        state["payload"]["state"] = _fresh_weights(cfg, state["payload"]["model_kwargs"], r)
        state["optim"] = None
    fraction = min(1.0, cfg.train_steps * cfg.train_batch_size / max(1, n))
    select = ray.remote(select_training_rows).options(num_cpus=1, **TASK_OPTIONS)
    sample = [select.remote(block, seed=cfg.seed, round_index=r, fraction=fraction) for block in work.to_arrow_refs()]
    # The pool is idle while the surrogate trains: the task takes (and uses) the pool's CPUs.
    threads = max(1, min(int(resources.workers * resources.cpus_per_worker), int(ray.cluster_resources().get("CPU", 1))))
    task = ray.remote(train_surrogate_round).options(num_cpus=threads, num_gpus=1 if resources.use_gpu else 0,
                                                     **TASK_OPTIONS)
    trained = ray.get(task.remote(sample, payload=state["payload"], optim_state=state["optim"], cfg=cfg.to_dict(),
                                  use_gpu=resources.use_gpu, threads=threads))
    state["payload"], state["optim"] = trained["payload"], trained["optim"]
    return trained


def _update_noise(work, state: dict, cfg: UnlearnableConfig, resources: ResourceSpec, n: int):
    """Phase 2: PGD over every image on the actor pool. Returns the new working set and the
    frozen surrogate's mean loss on the perturbed data before and after this pass, with its
    accuracy after (the stop criterion)."""
    if cfg.mode == "samplewise":
        work = run(pgd_pass(work, state["payload"], cfg, resources, task="pgd"), lambda d: d.materialize())
        before, after, correct = (work.sum(c) for c in ("loss_before", "loss_after", "correct"))
    else:
        state["payload"]["class_noise"], before = _classwise_update(work, state["payload"], cfg, resources,
                                                                    state["payload"]["class_noise"])
        scored = run(pgd_pass(work, state["payload"], cfg, resources, task="eval"), lambda d: d.materialize())
        after, correct = scored.sum("loss"), scored.sum("correct")
    return work, {"perturbed_loss_before": before / n, "perturbed_loss_after": after / n,
                  "perturbed_acc": correct / n}
