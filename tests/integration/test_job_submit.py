"""`ray job submit` of the smoke-test job to a real local head (dashboard on, token auth on)."""
import glob
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
AGENT_WAIT_S = 120      # a loaded 2-core machine has taken minutes to bring a head's job agent up
HEAD_ATTEMPTS = 2       # a head whose agent never comes up is replaced once (fresh ports and temp dir)


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


def _log_tails(temp_dir, patterns=("dashboard_agent*.log", "dashboard_agent*.err", "raylet.out"), chars=1500) -> str:
    parts = []
    for pattern in patterns:
        for path in sorted(glob.glob(os.path.join(temp_dir, "session_latest", "logs", pattern))):
            with open(path, errors="replace") as f:
                parts.append(f"--- {os.path.basename(path)}\n{f.read()[-chars:]}")
    return "\n".join(parts) or f"(no logs under {temp_dir})"


def _agent_up(agent_port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{agent_port}/api/healthz", timeout=5) as r:
            return r.status == 200
    except OSError:
        return False


class _Head:
    """A ``ray start --head`` of this test's own, with the dashboard and its job agent."""

    def __init__(self, ray_cli: str, env: dict):
        self.temp_dir = tempfile.mkdtemp(prefix="rp-", dir="/tmp")   # AF_UNIX socket paths must stay short
        gcs, self.dash, self.agent = _free_port(), _free_port(), _free_port()
        start = subprocess.run([ray_cli, "start", "--head", f"--port={gcs}", "--num-cpus=4",
                                "--include-dashboard=true", "--dashboard-host=127.0.0.1",
                                f"--dashboard-port={self.dash}", f"--dashboard-agent-listen-port={self.agent}",
                                f"--temp-dir={self.temp_dir}", "--disable-usage-stats"],
                               env=env, capture_output=True, text=True, timeout=180)
        if start.returncode:
            self.stop()
            pytest.fail(start.stdout + start.stderr)

    def submit(self, cmd: list, env: dict):
        """Submit once the agent answers; None if it never does within AGENT_WAIT_S."""
        deadline = time.time() + AGENT_WAIT_S
        while time.time() < deadline:
            if _agent_up(self.agent):
                sub = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, cwd=ROOT)
                if "No available agent" not in sub.stdout + sub.stderr:
                    return sub
            time.sleep(2)
        return None

    def stop(self) -> None:
        _stop_head(self.temp_dir)
        shutil.rmtree(self.temp_dir, ignore_errors=True)


@pytest.mark.slow
def test_smoke_job_via_ray_job_submit(tmp_path):
    bindir = os.path.dirname(sys.executable)
    ray_cli = os.path.join(bindir, "ray")
    # A token of this test's own: the test must not depend on one left in ~/.ray by an earlier ray.init.
    env = {**os.environ, "PATH": bindir + os.pathsep + os.environ["PATH"], "RAY_AUTH_MODE": "token",
           "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    env.pop("RAY_ADDRESS", None)
    out = tmp_path / "protected"
    missed = []
    for attempt in range(HEAD_ATTEMPTS):
        head = _Head(ray_cli, env)
        try:
            job_id = f"raypriv-smoke-{os.getpid()}-{attempt}"
            cmd = [ray_cli, "job", "submit", f"--address=http://127.0.0.1:{head.dash}", f"--submission-id={job_id}",
                   "--working-dir", ROOT, "--", "python", "jobs/protect_unlearnable.py",
                   "--config", "jobs/configs/smoke.yaml", "--set", f"output={out}"]
            submit = head.submit(cmd, env)
            if submit is None:
                missed.append(_log_tails(head.temp_dir))
                continue
            _check_job(submit, env, dash=head.dash, job_id=job_id, out=out)
            return
        finally:
            head.stop()
    pytest.fail(f"the job agent never came up on {HEAD_ATTEMPTS} heads (waited {AGENT_WAIT_S} s each):\n"
                + "\n".join(missed))


def _check_job(submit, env: dict, *, dash: int, job_id: str, out) -> None:
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
