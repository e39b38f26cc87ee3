"""The one Ray Train launcher: a ``TorchTrainer`` set up the same way for every training job.

The driver side (:func:`fit`) fixes scaling (``resources.workers`` workers, each with
``cpus_per_worker`` CPUs and a GPU when asked for), the storage path (a local or mounted
directory, or a pyarrow filesystem URI such as ``s3://bucket/runs``: :mod:`raypriv.storage`), ``FailureConfig``, how many
checkpoints to keep, that datasets are handed over unsplit (workers split by a hash of the
row id: :meth:`WorkerContext.shard`), and that a failed run raises the raypriv error a
worker raised, or a :class:`TrainingError` naming the run and the cause's last line.

The worker side (:func:`worker_context`) sets torch's threads to the worker's CPUs and the
seed, and gives the rank, world size and device; :func:`report` is the collective
``ray.train.report`` where rank 0 attaches a checkpoint of a state dict, and
:func:`restore` reads the latest checkpoint back after a restart. The classifier recipe
(:mod:`raypriv.classifier`) and DP-VAE training both run through here.
"""
from __future__ import annotations

import dataclasses
import os
import tempfile
from typing import TYPE_CHECKING, Any, Callable

from raypriv.errors import RayprivError

if TYPE_CHECKING:  # pragma: no cover
    from raypriv.runtime import ResourceSpec

#: The file a checkpoint's state is saved in.
STATE_FILE = "state.pt"
#: Loop-config key through which the launcher passes the per-worker thread count.
THREADS_KEY = "_raypriv_threads"


class TrainingError(RayprivError):
    """A Ray Train run failed with an error that is not a raypriv error (the cause is chained)."""


def fit(loop: Callable[[dict], Any], *, config: dict, resources: "ResourceSpec", storage_path: str, name: str,
        datasets: dict, max_failures: int = 0, keep_checkpoints: int = 1, what: str = "training"):
    """Run ``loop(config)`` on ``resources.workers`` Ray Train workers; return the
    ``ray.train.Result`` (its ``return_value`` is rank 0's return value)."""
    from ray.train import CheckpointConfig, DataConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from raypriv.runtime.execute import find_raypriv_error
    from raypriv.storage import location

    per_worker = {"CPU": resources.cpus_per_worker}
    if resources.use_gpu:
        per_worker["GPU"] = resources.gpus_per_worker
    trainer = TorchTrainer(
        loop,
        train_loop_config={**config, THREADS_KEY: max(1, int(resources.cpus_per_worker))},
        scaling_config=ScalingConfig(num_workers=resources.workers, use_gpu=resources.use_gpu,
                                     resources_per_worker=per_worker),
        datasets=datasets, dataset_config=DataConfig(datasets_to_split=[]),    # workers split by id hash
        run_config=RunConfig(storage_path=location(storage_path, what="storage_path"), name=name,
                             checkpoint_config=CheckpointConfig(num_to_keep=keep_checkpoints),
                             failure_config=FailureConfig(max_failures=max_failures)))
    try:
        result = trainer.fit()
    except Exception as e:  # noqa: BLE001 - Ray Train raises the workers' errors wrapped
        error: BaseException | None = e
        result = None
    else:
        error = result.error
    if error is not None:
        found = find_raypriv_error(error)
        if found is not None:
            raise found from error
        text = str(error).strip()
        cause = text.splitlines()[-1] if text else type(error).__name__
        raise TrainingError(f"{what} run {name!r} failed: {cause}") from error
    return result


@dataclasses.dataclass(frozen=True)
class WorkerContext:
    """What a training loop needs to know about its worker."""

    rank: int
    world: int
    device: Any

    def shard(self, name: str, *, key: int = 0, what: str = "training set", columns: tuple[str, ...] | None = None
              ) -> tuple:
        """This worker's rows of dataset ``name`` (uint8 images, int64 labels, or the integer
        ``columns``, ordered by id): every row in exactly one worker's shard, by a keyed hash of its id."""
        import ray.train

        from raypriv.shards import load_shard

        return load_shard(ray.train.get_dataset_shard(name), rank=self.rank, world=self.world, key=key, what=what,
                          columns=columns)


def worker_context(config: dict, *, seed: int) -> WorkerContext:
    """Inside a training loop: set threads (from :func:`fit`) and ``torch.manual_seed(seed)``;
    return the worker's rank, world size and device."""
    import ray.train
    import ray.train.torch
    import torch

    torch.set_num_threads(int(config.get(THREADS_KEY, 1)))
    torch.manual_seed(seed)
    ctx = ray.train.get_context()
    return WorkerContext(rank=ctx.get_world_rank(), world=ctx.get_world_size(), device=ray.train.torch.get_device())


def report(metrics: dict, *, rank: int, state: Any = None, filename: str = STATE_FILE) -> None:
    """Collective ``ray.train.report`` (every worker calls it); with ``state``, rank 0 attaches
    a checkpoint holding ``torch.save(state)`` as ``filename``."""
    import ray.train
    import torch

    if rank != 0 or state is None:
        ray.train.report(metrics)
        return
    with tempfile.TemporaryDirectory() as d:
        torch.save(state, os.path.join(d, filename))
        ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(d))


def restore(filename: str = STATE_FILE, *, weights_only: bool = False) -> Any:
    """The state saved by the latest checkpoint of this run (after a restart or a resume), or None."""
    import ray.train
    import torch

    ckpt = ray.train.get_checkpoint()
    if ckpt is None:
        return None
    with ckpt.as_directory() as d:
        return torch.load(os.path.join(d, filename), map_location="cpu", weights_only=weights_only)


def saved_state(storage_path: str, name: str, filename: str = STATE_FILE, *, weights_only: bool = False) -> Any:
    """On the driver, before :func:`fit`: the state of the newest checkpoint an interrupted run
    ``name`` left in ``storage_path`` (a path or URI; what :func:`restore` will hand the
    workers), or None."""
    import io

    import torch

    from raypriv import storage

    run = storage.join(storage_path, name)
    for d in reversed(storage.subdirectories(run)):            # newest first: one lookup, not one per checkpoint
        path = storage.join(run, d, filename)
        if d.startswith("checkpoint_") and storage.exists(path):
            return torch.load(io.BytesIO(storage.read_bytes(path)), map_location="cpu", weights_only=weights_only)
    return None


def load_checkpoint(result, filename: str = STATE_FILE, *, weights_only: bool = True) -> Any:
    """The state in a finished run's (``ray.train.Result``) last checkpoint."""
    import torch

    if result.checkpoint is None:
        raise TrainingError("the run finished without a checkpoint")
    with result.checkpoint.as_directory() as d:
        return torch.load(os.path.join(d, filename), map_location="cpu", weights_only=weights_only)
