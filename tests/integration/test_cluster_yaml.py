"""cluster.yaml is a valid Ray autoscaler config and keeps the dashboard off the internet."""
import json
import os

import jsonschema
import ray
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _load():
    with open(os.path.join(ROOT, "cluster.yaml")) as f:
        return yaml.safe_load(f)


def test_cluster_yaml_matches_autoscaler_schema_of_installed_ray():
    schema_path = os.path.join(os.path.dirname(ray.__file__), "autoscaler", "ray-schema.json")
    with open(schema_path) as f:
        schema = json.load(f)
    jsonschema.validate(_load(), schema)


def test_cluster_has_cpu_head_gpu_workers_and_private_dashboard():
    cfg = _load()
    head = cfg["available_node_types"][cfg["head_node_type"]]
    assert "g" not in head["node_config"]["InstanceType"].split(".")[0]       # CPU head
    gpu = [t for n, t in cfg["available_node_types"].items() if n != cfg["head_node_type"]]
    assert gpu and gpu[0]["min_workers"] == 0 and gpu[0]["max_workers"] >= 1
    assert gpu[0]["node_config"]["InstanceType"].startswith(("g", "p"))       # AWS GPU families
    assert any("raypriv" in c for c in cfg["setup_commands"])
    start = " ".join(cfg["head_start_ray_commands"])
    assert "--dashboard-host=127.0.0.1" in start and "0.0.0.0" not in start
