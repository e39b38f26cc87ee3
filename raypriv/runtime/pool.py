"""The one actor-pool pass: a :class:`PoolWorker` mapped over a Ray Dataset's batches.

Every technique's distributed batch work (PGD over a corpus, BN statistics, synthetic-image
optimization, sampling, feature extraction, membership scores) runs through :func:`pool_map`,
which fixes the policy once:

* **the shared object is put once**: ``shared`` (model weights, statistics) goes to the
  object store a single time and each actor resolves it once in its constructor; batches
  then carry only data;
* **GPU**: an actor reserves a GPU only when the resources ask for one *and* the worker
  class uses it (``uses_gpu``), and an actor that reserved one runs on it (``self.device``);
* **threads follow CPUs**: each actor sets torch's thread count to the CPUs it reserved,
  so ``workers`` actors never oversubscribe ``workers × cpus_per_worker`` cores;
* **work reaches every actor**: an input with fewer blocks than ``2 × workers`` is split,
  and an actor takes one block at a time, so a second actor still starting does not find
  every block queued on the first (two workers made fewer image·steps/s than one before);
* **no deadlock on a full cluster**: when the pool's actors would hold every CPU of the
  cluster (2 workers on a 2-core ``ray start --head``), a lazy input is computed first; the
  read and transform tasks feeding the pool would otherwise wait forever for a CPU;
* **errors** raised in a worker reach the caller as the raypriv error they are
  (:func:`raypriv.runtime.execute.run` executes the pass).

Ray Data restarts a dead pool actor by default, re-sending constructor arguments from the
object store (and logs an ``ERROR core_worker.cc ... max_restarts > 0`` line on every pass
about it). raypriv's long stages resume from their own checkpoints instead, so pool actors
are not restarted: that removes the line, and a failed pass fails its stage with the error.

>>> class Doubler(PoolWorker):
...     uses_gpu = False
...     def setup(self, shared, *, factor):
...         self.factor = factor
...     def __call__(self, batch):
...         return {"id": batch["id"] * self.factor}
>>> Doubler(shared_ref=None, options={"factor": 2}, gpu=False, threads=1)({"id": 3})
{'id': 6}
"""
from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:  # pragma: no cover
    from raypriv.runtime import ResourceSpec

#: Blocks per actor an input is split into at least, so that every actor gets work.
MIN_BLOCKS_PER_WORKER = 2


class PoolWorker:
    """Base of the callable classes :func:`pool_map` runs on an actor pool.

    Lifecycle: ``setup(shared, **options)`` once per actor, then ``__call__(batch)`` for every
    batch (a dict of numpy arrays in, a dict of numpy arrays out). ``self.device`` is the GPU
    when the actor reserved one, else the CPU. Set ``uses_gpu = False`` on a worker that never
    puts work on a GPU (numpy-only), so that it never reserves one."""

    uses_gpu: ClassVar[bool] = True

    def __init__(self, *, shared_ref: list | None, options: dict, gpu: bool, threads: int):
        import torch

        torch.set_num_threads(max(1, int(threads)))
        self.device = torch.device("cuda" if gpu else "cpu")
        shared = None
        if shared_ref is not None:
            import ray

            shared = ray.get(shared_ref[0])
        self.setup(shared, **options)

    def setup(self, shared: Any, **options) -> None:
        """Build what every batch needs (a model on ``self.device``, targets) from ``shared``."""

    def __call__(self, batch: dict) -> dict:  # pragma: no cover - abstract
        raise NotImplementedError


def pool_map(ds, worker: type[PoolWorker], *, resources: "ResourceSpec", batch_size: int | None,
             shared: Any = None, options: dict | None = None, zero_copy_batch: bool = False):
    """``ds`` mapped by ``worker`` on ``resources.workers`` actors (a lazy Ray Dataset; execute
    it with :func:`raypriv.runtime.execute.run`). ``shared`` reaches each actor once, ``options``
    are ``setup``'s keyword arguments, ``batch_size`` rows per call (``None``: whole blocks)."""
    import ray

    if not (isinstance(worker, type) and issubclass(worker, PoolWorker)):
        raise TypeError(f"pool_map runs PoolWorker subclasses, got {worker!r}")
    gpu = resources.use_gpu and worker.uses_gpu
    per_actor: dict[str, Any] = {"num_cpus": resources.cpus_per_worker}
    if gpu:
        per_actor["num_gpus"] = resources.gpus_per_worker
    with warnings.catch_warnings():
        # ``max_restarts`` has no named parameter yet; Ray Data warns about any extra remote argument.
        warnings.filterwarnings("ignore", message="`ray_remote_args` is deprecated")
        return _spread(_computed_if_pool_fills_cluster(ds, resources), resources.workers).map_batches(
            worker,
            fn_constructor_kwargs={"shared_ref": None if shared is None else [ray.put(shared)],
                                   "options": dict(options or {}), "gpu": gpu,
                                   "threads": max(1, int(resources.cpus_per_worker))},
            compute=ray.data.ActorPoolStrategy(size=resources.workers, max_tasks_in_flight_per_actor=1),
            batch_size=batch_size, batch_format="numpy", zero_copy_batch=zero_copy_batch,
            max_restarts=0, **per_actor)


def _computed_if_pool_fills_cluster(ds, resources: "ResourceSpec"):
    """``ds`` materialized first when the pool would leave the cluster less than one free CPU
    for the tasks upstream of it (a materialized ``ds`` is returned as it is)."""
    import ray

    pool_cpus = resources.workers * resources.cpus_per_worker
    if _is_materialized(ds) or ray.cluster_resources().get("CPU", 0) - pool_cpus >= 1:
        return ds
    return ds.materialize()


def _spread(ds, workers: int):
    """``ds`` with at least ``MIN_BLOCKS_PER_WORKER × workers`` blocks when it is materialized
    with fewer (a lazy dataset's block count is unknown until it runs: left as it is). The split
    runs before the pool starts: inside the same pipeline its tasks would wait for CPUs that
    the pool's actors hold."""
    want = MIN_BLOCKS_PER_WORKER * workers
    if workers > 1 and _is_materialized(ds) and ds.num_blocks() < want:
        return ds.repartition(want).materialize()
    return ds


def _is_materialized(ds) -> bool:
    from ray.data.dataset import MaterializedDataset

    return isinstance(ds, MaterializedDataset)
