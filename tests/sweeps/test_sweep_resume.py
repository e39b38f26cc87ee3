"""A sweep killed mid-run (SIGKILL of its driver) resumes with Tuner.restore from the Tune
experiment it keeps in object storage (the session's S3-compatible server): the trials that
finished are not run again, the one in flight is, and is charged again (the stand-in job does
not resume its own run: its second training is a new mechanism on the data)."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import yaml

from tests.sweeps.sweep_jobs import MODULE, starts

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RAYPRIV = os.path.join(os.path.dirname(sys.executable), "raypriv")


@pytest.mark.slow
def test_a_killed_sweep_resumes_without_rerunning_finished_trials(ray_local, tmp_path):
    """Both drivers join the test session's Ray (RAY_ADDRESS), as `ray job submit` drivers join a
    cluster: the killed driver's trials die with it, the cluster stays."""
    from raypriv import storage
    from tests.conftest import s3_prefix

    out, remote = str(tmp_path / "sweep"), s3_prefix("sweep")
    cfg = tmp_path / "sweep.yaml"
    # trial 0 is quick; trial 1 is in flight when the driver dies (more than Tune's 10 s between
    # experiment snapshots after trial 0 finished); trials 2 and 3 have not started
    cfg.write_text(yaml.safe_dump({
        "job": "sweeptest", "imports": [MODULE], "output": out, "storage": remote, "budget": str(tmp_path / "budget"),
        "validation": 0,
        "base": {"output": "x", "epochs": 1, "sigma": 2.0}, "space": {"seconds": {"grid": [0.2, 14.0, 0.2, 0.2]}}}))
    env = {**os.environ, "RAY_ADDRESS": ray_local.get_runtime_context().gcs_address, "PYTHONPATH": ROOT}
    first = subprocess.Popen([RAYPRIV, "sweep", "--config", str(cfg)], env=env, cwd=ROOT,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 300
    while starts(out, 1) == 0 and first.poll() is None and time.time() < deadline:
        time.sleep(0.5)
    assert first.poll() is None, first.stdout.read()
    time.sleep(11.5)                                # trial 1 is running; trial 0's end is in a snapshot
    first.send_signal(signal.SIGKILL)
    first.wait()
    killed = {i: starts(out, i) for i in range(4)}
    assert killed == {0: 1, 1: 1, 2: 0, 3: 0}, killed
    assert not os.path.exists(os.path.join(out, "manifest.json"))
    assert storage.exists(storage.join(remote, "tune")) and not os.path.exists(os.path.join(out, "tune"))
    ledger_lines = open(next(iter((tmp_path / "budget").iterdir()))).read().splitlines()

    second = subprocess.run([RAYPRIV, "sweep", "--config", str(cfg)], env=env, cwd=ROOT, capture_output=True,
                            text=True, timeout=600)
    assert second.returncode == 0, second.stdout + second.stderr
    assert f"resuming the Tune experiment in {remote}/tune" in second.stdout
    resumed = {i: starts(out, i) for i in range(4)}
    print(f"trial starts after the kill {killed}, after the resume {resumed}")
    assert resumed == {0: 1, 1: 2, 2: 1, 3: 1}                # trial 0 not re-run; 1 re-run; 2, 3 once
    manifest = json.load(open(os.path.join(out, "manifest.json")))
    assert manifest["trials_finished"] == 4 and manifest["trials_failed"] == 0
    after = open(next(iter((tmp_path / "budget").iterdir()))).read().splitlines()
    assert after[:len(ledger_lines)] == ledger_lines and len(after) == len(ledger_lines) + 1
    assert len(json.loads(after[-1])["runs"]) == 1 and manifest["privacy"]["reruns"] == 1   # trial 1, trained again
