"""Noise generation on a 2-node ray.cluster_utils.Cluster (run in a subprocess: its own Ray)."""
import json
import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent("""
    import json, sys
    import ray
    from ray.cluster_utils import Cluster
    from raypriv.data import load_corpus
    from raypriv.runtime import ResourceSpec, quiet_ray_data
    from raypriv.unlearnable import UnlearnableConfig, protect

    # The head has 1 CPU (driver + surrogate task); an actor pool of 2 one-CPU actors
    # can only start if the second node hosts PGD actors.
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    cluster.add_node(num_cpus=2)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, log_to_driver=False)
    quiet_ray_data()
    assert len([n for n in ray.nodes() if n["Alive"]]) == 2
    corpus = load_corpus("digits", split="train").head(120)
    cfg = UnlearnableConfig(mode="classwise", surrogate="tiny_cnn", pgd_steps=3, train_steps=2,
                            train_batch_size=64, pgd_batch_size=32, max_rounds=2, stop_accuracy=1.0)
    res = protect(corpus, output=sys.argv[1], config=cfg, resources=ResourceSpec(workers=2),
                  progress=lambda m: print(m, flush=True))
    print(json.dumps({"rounds": res.manifest["rounds"], "rows": res.manifest["rows"]}))
    ray.shutdown()
    cluster.shutdown()
""")


@pytest.mark.slow
def test_protect_runs_on_two_node_cluster(tmp_path):
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(out)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary == {"rounds": 2, "rows": 120}
    assert (out / "manifest.json").exists()
