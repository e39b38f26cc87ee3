"""The privacy ledger: durable per-step charges, resume counts, refusal past the budget."""
import json

import pytest

from raypriv.privacy.ledger import BudgetExhaustedError, PrivacyLedger
from raypriv.errors import ArtifactError

STAGES = [{"name": "pretrain", "sigma": 2.0, "sample_rate": 0.05, "steps": 3},
          {"name": "main", "sigma": 1.5, "sample_rate": 0.05, "steps": 4}]


def make(tmp_path):
    return PrivacyLedger.create(str(tmp_path / "l.jsonl"), epsilon=5.0, delta=1e-5, accountant="prv", stages=STAGES)


def test_every_charge_is_on_disk_before_charge_returns(tmp_path):
    led = make(tmp_path)
    led.charge("pretrain")
    led.charge("pretrain")
    led.charge("main")
    again = PrivacyLedger.open(led.path)         # a fresh reader sees all three (as after a crash)
    assert (again.charged("pretrain"), again.charged("main")) == (2, 1)
    assert [m.steps for m in again.mechanisms()] == [2, 1]


def test_each_charge_is_written_out_and_fsynced_before_charge_returns(tmp_path, monkeypatch):
    """Surviving a power cut needs the record on the device, not in a buffer or the page cache:
    ``charge`` must hand the line to the OS and then ``fsync`` that file before returning. The
    spy wraps the real ``os.fsync`` and reads, through its own descriptor, what the file holds
    at the moment of each call (a missing ``flush`` leaves the line in Python's buffer then)."""
    import os

    led = make(tmp_path)
    real_fsync, synced = os.fsync, []

    def spy(fd):
        if os.path.realpath(f"/proc/self/fd/{fd}") == os.path.realpath(led.path):
            with open(led.path) as other:
                synced.append(other.read())
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", spy)
    for n, stage in enumerate(["pretrain", "pretrain", "main"], start=1):
        step = led.charge(stage)
        assert len(synced) == n, "no fsync of the ledger in this charge"
        assert json.loads(synced[-1].splitlines()[-1]) | {"t": 0} == {"stage": stage, "step": step, "t": 0}


def test_epsilon_spent_grows_with_steps_and_reaches_the_plan(tmp_path):
    from raypriv.privacy.accounting import Mechanism, epsilon

    led = make(tmp_path)
    assert led.epsilon_spent() == 0.0
    for s in STAGES:
        for _ in range(s["steps"]):
            led.charge(s["name"])
    full = epsilon([Mechanism(sigma=s["sigma"], sample_rate=s["sample_rate"], steps=s["steps"]) for s in STAGES],
                   delta=1e-5)
    assert led.epsilon_spent() == pytest.approx(full)
    assert led.summary()["stages"][1]["steps_charged"] == 4


def test_charging_past_the_plan_is_refused(tmp_path):
    led = make(tmp_path)
    for _ in range(3):
        led.charge("pretrain")
    with pytest.raises(BudgetExhaustedError, match="stage 'pretrain' has charged all 3 planned steps"):
        led.charge("pretrain")
    assert PrivacyLedger.open(led.path).charged("pretrain") == 3


def test_a_torn_last_line_is_ignored_and_the_ledger_cannot_be_recreated(tmp_path):
    led = make(tmp_path)
    led.charge("main")
    with open(led.path, "a") as f:
        f.write('{"stage": "main", "st')                   # a crash mid-write
    assert PrivacyLedger.open(led.path).charged("main") == 1
    with pytest.raises(ArtifactError, match="already exists"):
        make(tmp_path)


def test_header_records_budget_and_plan(tmp_path):
    led = make(tmp_path)
    header = json.loads(open(led.path).readline())
    assert header["epsilon"] == 5.0 and header["accountant"] == "prv" and header["stages"] == STAGES


def test_two_holders_of_one_ledger_charge_the_plan_once_in_total(tmp_path):
    """Each charge re-reads the durable count under the file lock: a second holder (another run
    on the same directory) sees the first one's steps and cannot spend them again."""
    a = make(tmp_path)
    b = PrivacyLedger.open(a.path)
    assert [a.charge("main"), b.charge("main"), a.charge("main"), b.charge("main")] == [1, 2, 3, 4]
    for led in (a, b):
        with pytest.raises(BudgetExhaustedError):
            led.charge("main")
    assert PrivacyLedger.open(a.path).charged("main") == 4


def test_concurrent_processes_never_charge_past_the_plan(tmp_path):
    import subprocess
    import sys

    led = PrivacyLedger.create(str(tmp_path / "l.jsonl"), epsilon=5.0, delta=1e-5, accountant="prv",
                               stages=[{"name": "main", "sigma": 1.0, "sample_rate": 0.01, "steps": 60}])
    script = ("import sys; from raypriv.privacy.ledger import PrivacyLedger, BudgetExhaustedError\n"
              "led = PrivacyLedger.open(sys.argv[1]); n = 0\n"
              "try:\n    for _ in range(50): led.charge('main'); n += 1\n"
              "except BudgetExhaustedError: pass\nprint(n)")
    procs = [subprocess.Popen([sys.executable, "-c", script, led.path], stdout=subprocess.PIPE, text=True)
             for _ in range(2)]
    counts = [int(p.communicate(timeout=120)[0]) for p in procs]
    assert sum(counts) == 60 and PrivacyLedger.open(led.path).charged("main") == 60
    steps = [json.loads(line)["step"] for line in open(led.path).read().splitlines()[1:]]
    assert steps == list(range(1, 61))                  # each step charged once, in order


def test_a_charge_after_a_torn_line_still_counts(tmp_path):
    """A crash mid-write leaves a line without its newline; the next charge must start a fresh
    line, or it would be glued to the torn one and lost on the next read (an under-count)."""
    led = make(tmp_path)
    led.charge("main")
    with open(led.path, "a") as f:
        f.write('{"stage": "main", "st')
    again = PrivacyLedger.open(led.path)
    assert again.charge("main") == 2
    assert PrivacyLedger.open(led.path).charged("main") == 2
