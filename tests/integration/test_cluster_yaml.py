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


def test_the_head_advertises_no_cpus_to_the_autoscaler_and_to_ray():
    cfg = _load()
    head = cfg["available_node_types"][cfg["head_node_type"]]
    assert head["resources"] == {"CPU": 0}
    assert "--num-cpus=0" in " ".join(cfg["head_start_ray_commands"])


def _rayjob():
    with open(os.path.join(ROOT, "deploy", "rayjob-smoke.yaml")) as f:
        return yaml.safe_load(f)


def _pods(spec):
    """(role, pod spec) of the head, every worker group and the submitter."""
    cluster = spec["rayClusterSpec"]
    yield "head", cluster["headGroupSpec"]["template"]["spec"]
    for group in cluster["workerGroupSpecs"]:
        yield group["groupName"], group["template"]["spec"]
    yield "submitter", spec["submitterPodTemplate"]["spec"]


def test_the_kuberay_rayjob_runs_a_smoke_job_of_this_checkout_with_token_auth_and_no_work_on_the_head():
    import shlex

    from raypriv.jobs import get_job
    from raypriv.jobs.entry import load_job_config

    job = _rayjob()
    assert job["apiVersion"] == "ray.io/v1" and job["kind"] == "RayJob"
    spec = job["spec"]
    assert spec["rayClusterSpec"]["rayVersion"] == ray.__version__ and spec["shutdownAfterJobFinishes"] is True
    argv = shlex.split(spec["entrypoint"])
    assert argv[0] == "python" and argv[1].startswith("/app/jobs/") and argv[2] == "--config"
    script, config = (os.path.join(ROOT, a.removeprefix("/app/")) for a in (argv[1], argv[3]))
    assert os.path.exists(script)
    sets = [argv[i + 1] for i, a in enumerate(argv) if a == "--set"]
    built = get_job("protect").from_dict(load_job_config(config, sets))   # the config and --set build the job
    assert built.output.startswith("s3://")                                 # outputs on object storage
    head = spec["rayClusterSpec"]["headGroupSpec"]["rayStartParams"]
    assert head["num-cpus"] == "0"
    for group in (spec["rayClusterSpec"]["headGroupSpec"], *spec["rayClusterSpec"]["workerGroupSpecs"]):
        assert all(isinstance(v, str) for v in group["rayStartParams"].values())   # KubeRay: map[string]string
    for role, pod in _pods(spec):
        for container in pod["containers"]:
            env = {e["name"]: e for e in container["env"]}
            assert env["RAY_AUTH_MODE"]["value"] == "token", role
            assert env["RAY_AUTH_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == "raypriv-ray-token", role
            assert container["image"] == "YOUR-REGISTRY/raypriv:latest", role
    dockerfile = open(os.path.join(ROOT, "deploy", "Dockerfile")).read()
    assert f"FROM rayproject/ray:{ray.__version__}-py311" in dockerfile
    for line in dockerfile.splitlines():           # what the image copies exists in the checkout
        if line.startswith("COPY "):
            assert all(os.path.exists(os.path.join(ROOT, p)) for p in line.split()[2:-1]), line


def test_the_gpu_job_config_keeps_its_output_and_checkpoints_on_object_storage():
    from raypriv.jobs import get_job
    from raypriv.jobs.entry import load_job_config

    job = get_job("protect").from_dict(load_job_config(os.path.join(ROOT, "jobs", "configs", "cifar10_gpu.yaml"), []))
    assert job.output.startswith("s3://") and job.checkpoint_dir.startswith("s3://")
    assert job.resources.use_gpu
