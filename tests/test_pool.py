"""The one actor-pool pass (:mod:`raypriv.runtime.pool`) on a real local Ray: threads follow the
CPUs an actor reserved, every actor gets blocks, the shared object reaches each actor, a worker's
raypriv error reaches the caller as itself, and a pool that holds every CPU does not deadlock
on a lazy input."""
import os
import time

import numpy as np
import pytest

from raypriv.errors import DataError
from raypriv.runtime import ResourceSpec
from raypriv.runtime.execute import run
from raypriv.runtime.pool import PoolWorker, pool_map


class Probe(PoolWorker):
    uses_gpu = False

    def setup(self, shared, *, fail_on=None, barrier=None):
        self.shared, self.fail_on, self.barrier = shared, fail_on, barrier

    def _meet(self, deadline_s=60):
        """Wait (up to ``deadline_s``) until two actors have each been handed a batch."""
        open(os.path.join(self.barrier, str(os.getpid())), "w").close()
        deadline = time.time() + deadline_s
        while len(os.listdir(self.barrier)) < 2 and time.time() < deadline:
            time.sleep(0.05)

    def __call__(self, batch):
        import torch

        if self.fail_on is not None and self.fail_on in batch["id"]:
            raise DataError("bad row", item=f"row {self.fail_on}")
        if self.barrier:
            self._meet()
        n = len(batch["id"])
        return {"pid": np.full(n, os.getpid()), "threads": np.full(n, torch.get_num_threads()),
                "shared": np.full(n, self.shared["k"]), "device": np.array([str(self.device)] * n)}


@pytest.fixture(scope="module")
def rows(ray_local):
    return ray_local.data.range(400, override_num_blocks=2).materialize()


def test_threads_follow_cpus_and_every_actor_gets_blocks(rows, tmp_path):
    """Each actor's first batch waits until the other actor has one too: only a pass that hands
    an actor one block at a time, from a two-block input split into more, gets past it whatever
    the actors' start-up order (a queue of every block on the first actor would time out)."""
    out = run(pool_map(rows, Probe, resources=ResourceSpec(workers=2, cpus_per_worker=2.0), batch_size=50,
                       shared={"k": 7}, options={"barrier": str(tmp_path)}), lambda d: d.take_all())
    assert len(out) == 400 and {int(r["threads"]) for r in out} == {2} and {int(r["shared"]) for r in out} == {7}
    assert len({int(r["pid"]) for r in out}) == 2          # a two-block input still reaches both actors
    assert {r["device"] for r in out} == {"cpu"}


def test_a_worker_error_reaches_the_caller_as_itself(rows):
    with pytest.raises(DataError, match="row 123: bad row"):
        run(pool_map(rows, Probe, resources=ResourceSpec(workers=1), batch_size=50, shared={"k": 1},
                     options={"fail_on": 123}), lambda d: d.take_all())


def test_a_pool_holding_every_cpu_still_reads_a_lazy_input(ray_local):
    """4 of the session's 4 CPUs in actors: the lazy map upstream would never get a CPU."""
    lazy = ray_local.data.range(200).map_batches(lambda b: b, batch_format="numpy")
    lazy.context.execution_no_progress_timeout_s = 60          # a deadlock fails instead of hanging
    out = run(pool_map(lazy, Probe, resources=ResourceSpec(workers=2, cpus_per_worker=2.0), batch_size=50,
                       shared={"k": 3}), lambda d: d.take_all())
    assert len(out) == 200


def test_only_pool_workers_run():
    with pytest.raises(TypeError, match="PoolWorker"):
        pool_map(None, dict, resources=ResourceSpec(), batch_size=1)
