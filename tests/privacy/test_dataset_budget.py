"""A dataset's budget across runs: charged once per id, durably, refused past its cap with
nothing written, and the composed ε recomputed from what the file records."""
import json
import multiprocessing

import pytest

from raypriv.errors import ConfigError
from raypriv.privacy.accounting import Mechanism
from raypriv.privacy.budget import DatasetBudget
from raypriv.privacy.ledger import BudgetExhaustedError
from raypriv.privacy.selection import RdpCurve, TruncatedNegativeBinomial, compose

RUN = [Mechanism(sigma=1.0, sample_rate=0.01, steps=1000)]
FP = "hmac-sha256:8a99df66:a57919ffd54f040a70a17efe1673abfe"


def test_charges_compose_and_a_repeated_id_pays_once(tmp_path):
    budget = DatasetBudget.open(str(tmp_path), fingerprint=FP, delta=1e-5)
    assert budget.charge("s/0", runs=[RUN]) and budget.charge("s/1", runs=[RUN])
    assert not budget.charge("s/1", runs=[RUN])
    again = DatasetBudget.open(str(tmp_path), fingerprint=FP, delta=1e-5)       # read back from the file
    assert len(again.entries()) == 2
    assert again.epsilon() == pytest.approx(compose([RdpCurve.of(RUN)] * 2).epsilon(1e-5))


def test_a_charge_past_the_cap_is_refused_and_not_written(tmp_path):
    budget = DatasetBudget.open(str(tmp_path), fingerprint=FP, delta=1e-5, epsilon_budget=2.5)
    budget.charge("a", runs=[RUN])                                   # ε 2.10
    with pytest.raises(BudgetExhaustedError, match="past its budget of 2.5"):
        budget.charge("b", runs=[RUN])                               # would be 2.87 composed
    assert [e["id"] for e in budget.entries()] == ["a"]
    with pytest.raises(ConfigError, match="cannot be raised"):
        DatasetBudget.open(str(tmp_path), fingerprint=FP, delta=1e-5, epsilon_budget=10.0)
    assert DatasetBudget.open(str(tmp_path), fingerprint=FP, delta=1e-5, epsilon_budget=1.0).cap == 1.0
    with pytest.raises(ConfigError, match="δ = 1e-05"):
        DatasetBudget.open(str(tmp_path), fingerprint=FP, delta=1e-6)


def test_private_selection_is_charged_without_the_number_of_trials(tmp_path):
    budget = DatasetBudget.open(str(tmp_path), fingerprint=FP, delta=1e-5)
    k = TruncatedNegativeBinomial.with_mean(8, eta=1)
    budget.charge("sel", candidates=[RUN, [Mechanism(sigma=2.0, sample_rate=0.01, steps=1000)]], selection=k)
    entry = budget.entries()[0]
    assert entry["kind"] == "private-selection" and set(entry) >= {"eta", "gamma", "candidates"}
    assert not {"k", "trials", "K"} & set(entry)
    assert budget.epsilon() == pytest.approx(3.974, abs=0.01)          # the worst candidate's bound


def test_a_torn_last_line_is_ignored(tmp_path):
    budget = DatasetBudget.open(str(tmp_path), fingerprint=FP, delta=1e-5)
    budget.charge("a", runs=[RUN])
    with open(budget.path, "a") as f:
        f.write('{"id": "b", "kind": "ru')                            # a crash mid-write
    assert [e["id"] for e in budget.entries()] == ["a"]
    budget.charge("c", runs=[RUN])                                      # the fragment is dropped, not kept
    assert [json.loads(line)["id"] for line in open(budget.path).read().splitlines()[1:]] == ["a", "c"]


def test_a_damaged_line_inside_the_budget_is_an_error_not_a_missing_charge(tmp_path):
    from raypriv.errors import ArtifactError

    budget = DatasetBudget.open(str(tmp_path), fingerprint=FP, delta=1e-5)
    budget.charge("a", runs=[RUN])
    budget.charge("b", runs=[RUN])
    lines = open(budget.path).read().splitlines()
    lines[1] = lines[1][:20]
    open(budget.path, "w").write("\n".join(lines) + "\n")
    with pytest.raises(ArtifactError, match="line 2 is not a charge"):
        budget.epsilon()


def _charge(args):
    directory, i = args
    return DatasetBudget.open(directory, fingerprint=FP, delta=1e-5, epsilon_budget=3.0).charge(f"t{i}", runs=[RUN])


def test_processes_racing_for_the_last_of_the_budget_never_overspend(tmp_path):
    """Three processes each charge one 2.1-ε run against a cap of 3: two fit (2.87 composed, three
    would be 3.51), the third is refused, whatever the interleaving."""
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(3) as pool:
        results = pool.map(_safe_charge, [(str(tmp_path), i) for i in range(3)])
    budget = DatasetBudget.open(str(tmp_path), fingerprint=FP, delta=1e-5)
    assert results.count(True) == len(budget.entries()) == 2 and budget.epsilon() <= 3.0
    assert results.count("refused") == 1


def _safe_charge(args):
    try:
        return _charge(args)
    except BudgetExhaustedError:
        return "refused"
