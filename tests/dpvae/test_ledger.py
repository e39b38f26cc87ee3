"""The privacy ledger: durable per-step charges, resume counts, refusal past the budget."""
import json

import pytest

from raypriv.dpvae.ledger import BudgetExhaustedError, PrivacyLedger
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


def test_epsilon_spent_grows_with_steps_and_reaches_the_plan(tmp_path):
    from raypriv.dpvae.accounting import Mechanism, epsilon

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
