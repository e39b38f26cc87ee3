"""The README's `ray start` / `ray job submit` commands, run as written against a real local head
(dashboard on, token authentication on)."""
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

import pytest

from raypriv.runtime import LOCAL_SYSTEM_CONFIG

from tests.conftest import TRAIN_POLL_S
from tests.processes import kill_processes_using

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
#: What the README's smoke jobs write under /tmp/raypriv-smoke (removed first: a finished stage
#: would be reused, and the sweep's budget would grow run after run).
SMOKE_OUTPUTS = ("digits-ue-eval", "digits-synth", "digits-dpvae", "mtk", "digits-sweep", "budget")
AGENT_WAIT_S = 400      # a 2-core machine running the suite has taken over 2 minutes to bring a head's job agent up


def _log_tails(temp_dir, patterns=("dashboard_agent*.log", "dashboard_agent*.err", "raylet.out"), chars=1500) -> str:
    parts = []
    for pattern in patterns:
        for path in sorted(glob.glob(os.path.join(temp_dir, "**", "session_latest", "logs", pattern), recursive=True)):
            with open(path, errors="replace") as f:
                parts.append(f"--- {os.path.basename(path)}\n{f.read()[-chars:]}")
    return "\n".join(parts) or f"(no logs under {temp_dir})"


def readme_job_commands(readme: str) -> list[str]:
    """The shell lines of the README's first code block under "## Cluster jobs", with
    backslash continuations joined and trailing comments dropped."""
    section = readme.split("## Cluster jobs", 1)[1]
    block = section.split("```bash\n", 1)[1].split("```", 1)[0]
    lines, current = [], ""
    for raw in block.splitlines():
        current += raw.rstrip()
        if current.endswith("\\"):
            current = current[:-1]
            continue
        line = re.sub(r"\s+#\s.*$", "", current).strip()
        if line:
            lines.append(" ".join(line.split()))
        current = ""
    return lines


def test_readme_job_commands_are_parsed_whole():
    cmds = readme_job_commands(open(os.path.join(ROOT, "README.md"), encoding="utf-8").read())
    assert cmds[0] == "export RAY_AUTH_MODE=token" and cmds[2].startswith("ray start --head")
    assert sum(c.startswith("ray job submit") for c in cmds) == 6
    assert all(" -- python jobs/" in c for c in cmds if c.startswith("ray job submit"))


def _run_line(line: str, env: dict):
    """One README line in bash; a submit that finds no job agent yet (a loaded 2-core machine takes
    a while to bring it up) is repeated as it is."""
    deadline = time.time() + AGENT_WAIT_S
    while True:
        p = subprocess.run(["bash", "-c", line], env=env, cwd=ROOT, capture_output=True, text=True, timeout=900)
        if not (line.startswith("ray job submit") and "No available agent" in p.stdout + p.stderr
                and time.time() < deadline):
            return p
        time.sleep(3)


@pytest.fixture
def without_session_ray():
    """The session's own local Ray paused for the test: its dashboard agent holds the default
    agent port (52365) that the README's plain ``ray start --head`` needs. Restarted afterwards."""
    import ray

    running = ray.is_initialized()
    if running:
        ray.shutdown()
    yield
    if running:
        from tests.conftest import start_session_ray

        start_session_ray()


@pytest.mark.slow
def test_readme_job_commands_run_as_written(tmp_path, without_session_ray):
    """The README's cluster-job block, line by line as a new user types it, in a fresh home
    directory (no token yet): every job succeeds, with token authentication on."""
    bindir = os.path.dirname(sys.executable)
    home, temp_dir = tmp_path / "home", tempfile.mkdtemp(prefix="rp-", dir="/tmp")   # short AF_UNIX paths
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env.update(HOME=str(home), PATH=bindir + os.pathsep + os.environ["PATH"], RAY_TMPDIR=temp_dir,
               RAY_TRAIN_HEALTH_CHECK_INTERVAL_S=os.environ.get("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", TRAIN_POLL_S),
               # the head keeps idle worker processes as the embedded Ray does (LOCAL_SYSTEM_CONFIG)
               **{f"RAY_{k}": str(v) for k, v in LOCAL_SYSTEM_CONFIG.items()})
    smoke = "/tmp/raypriv-smoke"
    for out in ("/tmp/digits-ue", *(f"{smoke}/{d}" for d in SMOKE_OUTPUTS)):     # the jobs' own outputs
        shutil.rmtree(out, ignore_errors=True)
    if os.path.exists(f"{smoke}/mtk.keys"):
        os.remove(f"{smoke}/mtk.keys")
    logs = []
    try:
        for line in readme_job_commands(open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()):
            if line.startswith("export "):
                key, _, value = line[len("export "):].partition("=")
                env[key] = value
                continue
            t0 = time.time()
            p = _run_line(line, env)
            logs.append(f"$ {line}  ({time.time() - t0:.0f} s)\n{p.stdout[-3000:]}{p.stderr[-3000:]}")
            assert p.returncode == 0, "\n".join(logs) + "\n" + _log_tails(temp_dir)
        assert "round   2" in logs[-6]                      # progress lines reach the submitter
        manifest = json.loads(open("/tmp/digits-ue/manifest.json").read())
        assert manifest["method"] == "unlearnable-samplewise" and manifest["rounds"] == 2
        evaluation = json.loads(open("/tmp/raypriv-smoke/digits-ue-eval/manifest.json").read())
        report = json.loads(open("/tmp/raypriv-smoke/digits-ue-eval/report.json").read())
        assert evaluation["method"] == "unlearnable-evaluation" and len(report["results"]) == 2
        assert report["data"]["protected"]["num_rows"] == manifest["rows"]
        synth = json.loads(open("/tmp/raypriv-smoke/digits-synth/synth/manifest.json").read())
        assert synth["method"] == "synth-bn-stats-generate" and os.path.exists("/tmp/raypriv-smoke/digits-synth/stats")
        dpvae = json.loads(open(f"{smoke}/digits-dpvae/model/release/manifest.json").read())
        assert dpvae["privacy"]["private"] and 0 < dpvae["privacy"]["epsilon_spent"] <= 4.0
        assert os.path.exists(f"{smoke}/digits-dpvae/eval/manifest.json")
        from raypriv.mtk.evaluate import summary

        mtk = summary(json.loads(open(f"{smoke}/mtk/eval/report.json").read()))
        assert mtk["keyed_accuracy"] > 0.5, mtk                    # the secured digit, answered with its key
        assert oct(os.stat(f"{smoke}/mtk.keys").st_mode & 0o777) == "0o600"
        sweep = json.loads(open(f"{smoke}/digits-sweep/manifest.json").read())
        assert sweep["trials_finished"] == 2 and sweep["privacy"]["sweep_epsilon"] > 0
        anonymous = {**env, "RAY_AUTH_MODE": "disabled"}
        query = "from ray.job_submission import JobSubmissionClient as C; print(C('http://127.0.0.1:8265').list_jobs())"
        refused = subprocess.run([sys.executable, "-c", query], env=anonymous, capture_output=True, text=True,
                                 timeout=120)
        assert refused.returncode != 0 and "Authentication" in refused.stderr   # token auth is really on
        assert os.path.exists(home / ".ray" / "auth_token")
        print("\n".join(log.splitlines()[0] for log in logs))   # the time each README line took (-s shows it)
    finally:
        kill_processes_using(temp_dir)
        shutil.rmtree(temp_dir, ignore_errors=True)
