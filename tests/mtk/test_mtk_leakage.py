"""The leakage probe of ``raypriv mtk evaluate``: cross-fitted over id-hash folds, so every
held-out row is scored once, by a probe that never saw it."""
import pytest
import numpy as np

from raypriv.mtk.config import TaskLayout
from raypriv.mtk.evaluate import NO_KEY, PROBE_FOLDS, cross_fitted, leakage, majority_rate, probe_folds


def test_every_row_is_scored_once_by_a_probe_fitted_on_the_others():
    y = np.repeat(np.arange(3), 21)
    x = np.eye(3)[y]
    y_flipped = y.copy()
    y_flipped[5] = 2                      # one row whose feature says 0: only that row is wrong
    fold = np.arange(len(y)) % PROBE_FOLDS
    # a half/half split would score ~31 rows: its figure could not be 62/63
    assert cross_fitted(x, y_flipped, fold) == (len(y) - 1) / len(y)


def test_the_probe_does_not_score_rows_it_was_fitted_on():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 150))       # unique rows, labels independent of them: memorisable only
    y = rng.integers(0, 2, size=200)
    assert abs(cross_fitted(x, y, probe_folds([f"r{i}" for i in range(200)])) - 0.5) < 0.12


def test_folds_are_a_pure_balanced_function_of_the_ids():
    ids = [f"img-{i}" for i in range(1000)]
    fold = probe_folds(ids)
    assert np.array_equal(fold, probe_folds(list(reversed(ids)))[::-1])
    counts = np.bincount(fold, minlength=PROBE_FOLDS)
    assert len(counts) == PROBE_FOLDS and counts.min() > 150


def test_the_base_rate_guesses_the_other_folds_majority():
    y = np.array([0] * 70 + [1] * 30)
    assert majority_rate(y, np.arange(100) % 5) == 0.7


def test_leakage_references_on_a_model_that_copies_the_true_unsecured_answers():
    """Unsecured logits that are exactly the true unsecured labels leak exactly the irreducible level."""
    rng = np.random.default_rng(1)
    digit = rng.choice(10, size=600, p=np.arange(1, 11) / 55)     # no ties between the likeliest digits
    parity = digit % 2
    layout = TaskLayout(("digit", "parity"), (10, 2), ("digit",))
    logits = np.concatenate([rng.normal(size=(600, 10)), np.eye(2)[parity] * 5], axis=1)
    report = leakage({"id": np.array([f"r{i}" for i in range(600)]), "labels": np.stack([digit, parity], 1),
                      NO_KEY: logits}, layout)["digit"]
    assert report["from_unsecured_outputs"] == report["irreducible"] == report["from_unsecured_answers"]
    # the best guess knowing the parity: 8 or 9 (17 of 55 the likeliest digit alone gets: 10 of 55)
    assert report["base_rate"] < 0.22 < 0.28 < report["irreducible"] < 0.4


def test_answers_leak_less_than_the_logits_that_carry_more_than_the_answer():
    """Parity logits whose size follows the digit: a probe reads the digit from the logits, not
    from the answers (the one-hot parity), which leak the irreducible level only."""
    rng = np.random.default_rng(2)
    digit = rng.choice(10, size=800, p=np.arange(1, 11) / 55)
    parity = digit % 2
    layout = TaskLayout(("digit", "parity"), (10, 2), ("digit",))
    logits = np.concatenate([rng.normal(size=(800, 10)), np.eye(2)[parity] * (1 + digit[:, None])], axis=1)
    report = leakage({"id": np.array([f"r{i}" for i in range(800)]), "labels": np.stack([digit, parity], 1),
                      NO_KEY: logits}, layout)["digit"]
    assert report["from_unsecured_answers"] == report["irreducible"]
    assert report["from_unsecured_outputs"] > report["irreducible"] + 0.2


def test_the_report_summary_names_the_headline_figures_for_any_tasks():
    """What a sweep compares: the same names whatever the tasks (the audit's figures from its
    ``tasks`` part, the worst leak measured against its own reference)."""
    from raypriv.mtk.evaluate import summary

    report = {
        "tasks": {"names": ["left", "right", "sum"], "num_classes": [10, 10, 2], "secured": ["left"], "locked": True},
        "accuracy": {"none": {"left": 0.1, "right": 0.96, "sum": 0.9}, "all": {"left": 0.97, "right": 0.95, "sum": 0.9}},
        "leakage": {"left": {"from_unsecured_outputs": 0.6, "irreducible": 0.2, "base_rate": 0.1}},
        "audit": {"attacker": "held-out half", "config": {"sizes": [100, 1000]},
                  "tasks": {"left": {"100": {"unlocked": 0.1}, "1000": {"unlocked": 0.25}}}},
    }
    assert summary(report) == pytest.approx({"unsecured_accuracy": 0.93, "keyed_accuracy": 0.97, "unkeyed_accuracy": 0.1,
                                             "leakage": 0.6, "leakage_irreducible": 0.2, "audit_unlocked": 0.25})
    del report["audit"]
    assert "audit_unlocked" not in summary(report)
