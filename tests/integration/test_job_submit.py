"""`ray job submit` of the smoke-test job to a real local head (dashboard on, token auth on)."""
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _stop_head(temp_dir) -> None:
    """Stop only the Ray processes of this head (``ray stop`` would kill every Ray on the machine,
    including the test session's own). Its workers exit when their raylet is gone."""
    import psutil

    procs = []
    for p in psutil.process_iter(["cmdline"]):
        try:
            if any(str(temp_dir) in part for part in (p.info["cmdline"] or [])):
                procs.append(p)
                p.terminate()
        except psutil.Error:
            pass
    _, alive = psutil.wait_procs(procs, timeout=20)
    for p in alive:
        p.kill()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_smoke_job_via_ray_job_submit(tmp_path):
    bindir = os.path.dirname(sys.executable)
    ray_cli = os.path.join(bindir, "ray")
    env = {**os.environ, "PATH": bindir + os.pathsep + os.environ["PATH"], "RAY_AUTH_MODE": "token"}
    env.pop("RAY_ADDRESS", None)
    temp_dir = tempfile.mkdtemp(prefix="rp-", dir="/tmp")   # AF_UNIX socket paths must stay short
    gcs, dash, agent = _free_port(), _free_port(), _free_port()
    start = subprocess.run([ray_cli, "start", "--head", f"--port={gcs}", "--num-cpus=4", "--include-dashboard=true",
                            "--dashboard-host=127.0.0.1", f"--dashboard-port={dash}",
                            f"--dashboard-agent-listen-port={agent}", f"--temp-dir={temp_dir}",
                            "--disable-usage-stats"], env=env, capture_output=True, text=True, timeout=180)
    assert start.returncode == 0, start.stdout + start.stderr
    try:
        out = tmp_path / "protected"
        address = f"--address=http://127.0.0.1:{dash}"
        job_id = f"raypriv-smoke-{os.getpid()}"
        cmd = [ray_cli, "job", "submit", address, f"--submission-id={job_id}", "--working-dir", ROOT,
               "--", "python", "jobs/protect_unlearnable.py", "--config", "jobs/configs/smoke.yaml",
               "--set", f"output={out}"]
        for _ in range(30):  # the head's job agent takes a few seconds to come up after `ray start`
            submit = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, cwd=ROOT)
            if "No available agent" not in submit.stdout + submit.stderr:
                break
            time.sleep(2)
        log = submit.stdout[-4000:] + submit.stderr[-4000:]
        assert submit.returncode == 0, log
        query = ("import sys; from ray.job_submission import JobSubmissionClient as C; "
                 "print(C(sys.argv[1]).get_job_status(sys.argv[2]).value)")
        status = subprocess.run([sys.executable, "-c", query, f"http://127.0.0.1:{dash}", job_id], env=env,
                                capture_output=True, text=True, timeout=120)
        assert status.stdout.strip() == "SUCCEEDED", log + status.stderr[-2000:]
        anonymous = {**env, "RAY_AUTH_MODE": "disabled"}
        anonymous.pop("RAY_AUTH_TOKEN", None)
        refused = subprocess.run([sys.executable, "-c", query, f"http://127.0.0.1:{dash}", job_id], env=anonymous,
                                 capture_output=True, text=True, timeout=120)
        assert refused.returncode != 0 and "Authentication" in refused.stderr   # token auth is really on
        assert "round   2" in submit.stdout                      # progress lines reach the submitter
        manifest = json.loads((out / "manifest.json").read_text())
        assert manifest["method"] == "unlearnable-samplewise" and manifest["rows"] > 1000
        assert manifest["source"] == "digits" and manifest["rounds"] == 2
    finally:
        _stop_head(temp_dir)
        shutil.rmtree(temp_dir, ignore_errors=True)
