"""Connecting to Ray and describing the resources a job asks for.

>>> from raypriv.runtime import ResourceSpec
>>> ResourceSpec(workers=2).use_gpu
False
"""
from __future__ import annotations

import dataclasses
import logging
import os

from raypriv.errors import ConfigError

log = logging.getLogger(__name__)


#: Options of raypriv's own Ray tasks and actors: scheduled on the cluster, never captured by
#: the placement group of a Ray Tune trial that launches them (a sweep's trial holds one CPU
#: for itself; the work of its job asks for its own resources, like outside a sweep).
TASK_OPTIONS = {"scheduling_strategy": "DEFAULT"}


@dataclasses.dataclass(frozen=True)
class ResourceSpec:
    """How many parallel workers a distributed step uses and what each one holds.

    ``workers`` is the actor-pool size for Ray Data steps and the number of Ray Train
    workers for training; ``gpus_per_worker`` > 0 places each on a GPU.
    """

    workers: int = 1
    gpus_per_worker: float = 0.0
    cpus_per_worker: float = 1.0

    def __post_init__(self):
        if self.workers < 1:
            raise ConfigError("workers", f"must be >= 1, got {self.workers}")
        if self.gpus_per_worker < 0:
            raise ConfigError("gpus_per_worker", f"must be >= 0, got {self.gpus_per_worker}")
        if self.cpus_per_worker <= 0:
            raise ConfigError("cpus_per_worker", f"must be > 0, got {self.cpus_per_worker}")

    @property
    def use_gpu(self) -> bool:
        return self.gpus_per_worker > 0

    @classmethod
    def auto(cls, workers: int | None = None, gpus_per_worker: float | None = None) -> "ResourceSpec":
        """Pick defaults from the connected cluster: one worker per GPU if there are GPUs,
        otherwise one per CPU (at most 2 on small machines), unless given explicitly."""
        import ray

        res = ray.cluster_resources() if ray.is_initialized() else {}
        gpus = int(res.get("GPU", 0))
        if gpus_per_worker is None:
            gpus_per_worker = 1.0 if gpus > 0 else 0.0
        if workers is None:
            workers = gpus if gpus_per_worker > 0 else max(1, min(2, int(res.get("CPU", 1)) - 1))
        return cls(workers=workers, gpus_per_worker=gpus_per_worker)


#: Ray's ``_system_config`` for an embedded local Ray. Past as many idle worker processes as
#: CPUs, Ray kills an idle one a second after it goes idle; the next pass's actors and tasks then
#: start new processes and import torch again (seconds of CPU each, on every pass). Up to 16 are
#: kept and reused: ``tests/unlearnable/test_protect.py`` took 138 s with Ray's default and
#: 111 s with this (2 cores, 4 logical CPUs; a second 2-round protect of the digits in one Ray:
#: 25 s → 13 s). Only processes that were needed at once are kept. Ray Train's actors run in a
#: runtime environment of their own and start their own processes either way.
LOCAL_SYSTEM_CONFIG = {"num_workers_soft_limit": 16}


def init_ray(address: str | None = None, *, num_cpus: int | None = None, quiet: bool = True) -> None:
    """Connect to a Ray cluster at ``address``, or start an embedded local one.

    Does nothing if Ray is already initialized (so library calls compose inside jobs
    and tests that own the Ray instance). Inside ``ray job submit`` the address is
    taken from ``RAY_ADDRESS`` automatically.
    """
    import ray

    if ray.is_initialized():
        return
    kwargs: dict = {"log_to_driver": not quiet}
    if quiet:
        kwargs["logging_level"] = logging.ERROR
    if address is None and not os.environ.get("RAY_ADDRESS"):
        kwargs["num_cpus"] = num_cpus or max(4, os.cpu_count() or 1)
        kwargs["include_dashboard"] = False
        kwargs["_system_config"] = dict(LOCAL_SYSTEM_CONFIG)
    else:
        kwargs["address"] = address
    log.info("connecting to Ray (%s)", address or os.environ.get("RAY_ADDRESS") or "local")
    ray.init(**kwargs)
    if quiet:
        quiet_ray_data()


def quiet_ray_data() -> None:
    """Silence Ray's and Ray Data's own log lines in this process: raypriv prints its own
    progress lines, and an error raised in a worker reaches the caller as the raypriv error
    it is (:mod:`raypriv.runtime.execute`), so Ray Data's logged copy of the worker's
    traceback (about 130 lines) would only bury the one useful line. ``--verbose`` (``quiet=False``)
    keeps them all."""
    import ray

    logging.getLogger("ray").setLevel(logging.ERROR)
    # Ray Data re-applies its own level to "ray.data" on every execution; levels set on the
    # child loggers that write these lines stay.
    for name in ("ray.data", "ray.data.exceptions", "ray.data._internal.progress",
                 "ray.data._internal.execution.streaming_executor",
                 "ray.data._internal.execution.streaming_executor_state",
                 "ray.data._internal.progress.logging_progress", "ray.train", "ray.tune"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.enable_operator_progress_bars = False
