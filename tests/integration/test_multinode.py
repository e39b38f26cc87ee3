"""Noise generation on a 2-node ray.cluster_utils.Cluster (run in a subprocess: its own Ray):
the second node does PGD work, and the released corpus equals a one-node run's."""
import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

CONFIG = dict(mode="classwise", surrogate="tiny_cnn", pgd_steps=3, train_steps=2, train_batch_size=64,
              pgd_batch_size=32, max_rounds=1, stop_accuracy=1.0)
ROWS = 120

SCRIPT = textwrap.dedent("""
    import json, sys, time
    import ray
    from ray.cluster_utils import Cluster
    from ray.util.state import list_tasks
    from raypriv.data import load_corpus
    from raypriv.runtime import ResourceSpec, quiet_ray_data
    from raypriv.unlearnable import UnlearnableConfig, protect

    # The head (the driver's node) has no CPU: every task and PGD actor must run on the
    # second node, so the data crosses nodes both ways. (With a 1-CPU head, a pool actor
    # there could take every block before the second node's actor was ready: flaky.)
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
    second = cluster.add_node(num_cpus=2)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, log_to_driver=False)
    quiet_ray_data()
    assert len([n for n in ray.nodes() if n["Alive"]]) == 2
    config, rows = json.loads(sys.argv[2]), int(sys.argv[3])
    corpus = load_corpus("digits", split="train").head(rows)
    res = protect(corpus, output=sys.argv[1], config=UnlearnableConfig(**config),
                  resources=ResourceSpec(workers=2), progress=lambda m: print(m, flush=True))
    # PGD batches the second node's actors finished (task events arrive within seconds).
    on_second = 0
    for _ in range(60):
        on_second = sum(1 for t in list_tasks(detail=True, limit=10000)
                        if t.name.startswith("MapWorker(MapBatches(NoiseUpdater))") and t.name.endswith(".submit")
                        and t.node_id == second.node_id and t.state == "FINISHED")
        if on_second:
            break
        time.sleep(1)
    print(json.dumps({"rounds": res.manifest["rounds"], "rows": res.manifest["rows"],
                      "pgd_batches_on_second_node": on_second}))
    ray.shutdown()
    cluster.shutdown()
""")


def _released(path) -> dict:
    from raypriv.data import load_corpus

    return {r["id"]: r["image"] for r in load_corpus(f"parquet:{path}").ds.take_all()}


@pytest.mark.slow
def test_protect_on_two_nodes_uses_the_second_node_and_equals_one_node(tmp_path, ray_local):
    from raypriv.data import load_corpus
    from raypriv.runtime import ResourceSpec
    from raypriv.unlearnable import UnlearnableConfig, protect

    two = tmp_path / "two-nodes"
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(two), json.dumps(CONFIG), str(ROWS)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["rounds"] == 1 and summary["rows"] == ROWS
    assert summary["pgd_batches_on_second_node"] > 0, summary
    one = tmp_path / "one-node"
    protect(load_corpus("digits", split="train").head(ROWS), output=str(one), config=UnlearnableConfig(**CONFIG),
            resources=ResourceSpec(workers=2), progress=lambda m: None)
    a, b = _released(two), _released(one)
    assert set(a) == set(b) and len(a) == ROWS
    assert all(np.array_equal(a[i], b[i]) for i in a)
    m2, m1 = (json.loads((p / "manifest.json").read_text()) for p in (two, one))
    assert [h["perturbed_acc"] for h in m2["history"]] == [h["perturbed_acc"] for h in m1["history"]]
