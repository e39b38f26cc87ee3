"""`raypriv sweep` on a real local Ray: trials through Ray Tune, the results, the frontier, ASHA,
failed trials, and what a sweep of a DP job charges the dataset's budget."""
import json
import os

import pandas as pd
import pytest

from raypriv.errors import ConfigError
from raypriv.jobs.base import Reporter
from raypriv.privacy.ledger import BudgetExhaustedError
from raypriv.sweeps import SweepJob
from tests.sweeps.sweep_jobs import MODULE, starts


def _sweep(tmp_path, **settings):
    base = {"job": "sweeptest", "imports": [MODULE], "output": str(tmp_path / "sweep"), "base": {"output": "x"},
            "concurrent": 2, "validation": 0}
    return SweepJob.from_dict({**base, **settings})


def test_a_sweep_runs_every_trial_and_writes_results_frontier_and_manifest(ray_local, tmp_path):
    sweep = _sweep(tmp_path, space={"quality": {"grid": [0.2, 0.9, 0.5]}, "epochs": {"choice": [1, 2]}}, samples=2)
    reporter = Reporter(quiet=True)
    result = sweep.run(reporter)
    out = tmp_path / "sweep"
    rows = pd.read_csv(out / "results.csv")
    assert len(rows) == 6 and sorted(rows["trial"]) == list(range(6))
    assert sorted(rows["quality"]) == [0.2, 0.2, 0.5, 0.5, 0.9, 0.9]
    assert (rows["score"] == rows["quality"]).all() and (rows["stopped_early"] == 0).all()
    assert pd.read_parquet(out / "results.parquet").shape == rows.shape
    front = pd.read_csv(out / "frontier.csv")          # cost = quality²: every distinct quality is on it
    assert sorted(set(front["quality"])) == [0.2, 0.5, 0.9]
    assert (out / "frontier.png").stat().st_size > 5000
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["method"] == "sweep" and manifest["trials_finished"] == 6
    assert rows.set_index("trial").loc[manifest["best_trial"], "quality"] == 0.9
    assert manifest["privacy"]["kind"] == "no-dp-claim" and result.privacy is None
    assert result.metrics["sweep.trials_finished"] == 6
    for i in range(6):                                   # each trial ran once, in its own directory
        assert len((out / "trials" / f"{i:03d}" / "starts").read_text().splitlines()) == 1
    assert any("frontier" in line for line in reporter.lines)
    assert sum("finished (" in line for line in reporter.lines) == 6          # a line as each trial ends


def test_asha_stops_the_trials_that_trail_at_the_first_rung(ray_local, tmp_path):
    sweep = _sweep(tmp_path, space={"quality": {"grid": [0.9, 0.1, 0.2, 0.3]}}, base={"output": "x", "epochs": 4},
                   scheduler="asha", grace=1, concurrent=1)
    sweep.run(Reporter(quiet=True))
    rows = pd.read_csv(tmp_path / "sweep" / "results.csv").set_index("quality")
    assert rows.loc[0.9, "stopped_early"] == 0 and rows.loc[0.9, "training_iteration"] == 5   # 4 epochs + the result
    assert (rows.loc[[0.1, 0.2, 0.3], "stopped_early"] == 1).all()
    assert (rows.loc[[0.1, 0.2, 0.3], "training_iteration"] < 4).all()


def test_a_failed_trial_is_one_line_and_the_others_finish(ray_local, tmp_path):
    reporter = Reporter(quiet=True)
    _sweep(tmp_path, space={"fail": {"grid": [False, True]}}).run(reporter)
    manifest = json.loads((tmp_path / "sweep" / "manifest.json").read_text())
    assert manifest["trials_finished"] == 1 and manifest["trials_failed"] == 1
    assert manifest["errors"] == [f"trial 1: {tmp_path / 'sweep' / 'trials' / '001'}: the stand-in was told to fail"]
    assert any(line.startswith("failed: trial 1:") for line in reporter.lines)


def test_a_dp_sweep_charges_every_trial_composed_before_running(ray_local, tmp_path):
    import dp_accounting as dpa

    budget = tmp_path / "budget"
    result = _sweep(tmp_path, space={"sigma": {"grid": [1.0, 2.0]}}, budget=str(budget)).run(Reporter(quiet=True))
    manifest = json.loads((tmp_path / "sweep" / "manifest.json").read_text())
    events = [dpa.SelfComposedDpEvent(dpa.PoissonSampledDpEvent(0.01, dpa.GaussianDpEvent(s)), 1000) for s in (1.0, 2.0)]
    independent = dpa.rdp.RdpAccountant().compose(dpa.ComposedDpEvent(events)).get_epsilon(1e-5)
    cost = manifest["privacy"]
    assert cost["kind"] == "composed" and cost["sweep_epsilon"] == pytest.approx(independent, rel=1e-4)
    assert cost["sweep_epsilon"] > max(cost["trial_epsilon"]) and result.privacy["epsilon"] == cost["sweep_epsilon"]
    ledger = [json.loads(x) for x in open(cost["dataset"]["path"]).read().splitlines()]
    assert ledger[0]["kind"] == "raypriv-dataset-budget" and len(ledger) == 2 and len(ledger[1]["runs"]) == 2
    again = _sweep(tmp_path, space={"sigma": {"grid": [1.0, 2.0]}}, budget=str(budget)).run(Reporter(quiet=True))
    assert len(open(cost["dataset"]["path"]).read().splitlines()) == 2        # a resumed sweep pays once
    assert again.privacy["epsilon"] == pytest.approx(independent, rel=1e-4)
    import shutil

    shutil.rmtree(tmp_path / "sweep")                 # run again from nothing: its trials train again, and pay
    third = _sweep(tmp_path, space={"sigma": {"grid": [1.0, 2.0]}}, budget=str(budget)).run(Reporter(quiet=True))
    assert len(open(cost["dataset"]["path"]).read().splitlines()) == 3
    assert third.privacy["epsilon"] == pytest.approx(independent, rel=1e-4)     # this sweep's own ε
    assert json.loads((tmp_path / "sweep" / "manifest.json").read_text())["privacy"]["dataset"]["epsilon_spent"] \
        == pytest.approx(dpa.rdp.RdpAccountant().compose(dpa.ComposedDpEvent(events * 2)).get_epsilon(1e-5), rel=1e-4)
    with pytest.raises(ConfigError, match="other space"):
        _sweep(tmp_path, space={"sigma": {"grid": [1.0]}}, budget=str(budget)).run(Reporter(quiet=True))


@pytest.mark.parametrize("job,charged_again", [("sweeptest", True), ("sweeptest-resuming", False)])
def test_a_resumed_sweep_charges_the_trials_it_runs_again(ray_local, tmp_path, job, charged_again):
    """A trial that failed runs again on a resume, with fresh noise: charged again, unless its job
    resumes its own run within its plan (DP²-VAE); the finished trial is not run again."""
    from raypriv.privacy.accounting import Mechanism
    from raypriv.privacy.selection import RdpCurve, compose

    def sweep():
        return _sweep(tmp_path, job=job, base={"output": "x", "epochs": 1, "sigma": 2.0},
                      space={"fail_first": {"grid": [False, True]}}, budget=str(tmp_path / "budget"))

    sweep().run(Reporter(quiet=True))
    out = tmp_path / "sweep"
    first = json.loads((out / "manifest.json").read_text())
    assert first["trials_finished"] == 1 and first["trials_failed"] == 1
    reporter = Reporter(quiet=True)
    sweep().run(reporter)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["trials_finished"] == 2 and (starts(out, 0), starts(out, 1)) == (1, 2)
    ledger = [json.loads(x) for x in open(manifest["privacy"]["dataset"]["path"]).read().splitlines()[1:]]
    run = RdpCurve.of([Mechanism(sigma=2.0, sample_rate=0.01, steps=1000)])
    trainings = 3 if charged_again else 2
    assert len(ledger) == trainings - 1 and manifest["privacy"]["reruns"] == trainings - 2
    assert manifest["privacy"]["sweep_epsilon"] == pytest.approx(compose([run] * trainings).epsilon(1e-5), rel=1e-9)
    assert any("run again with fresh noise" in line for line in reporter.lines) == charged_again


def test_a_trial_whose_end_tune_lost_is_not_run_again(ray_local, tmp_path):
    """A trial records its final report itself: if Tune's experiment lost it (here: removed), the
    trial returns that report instead of training again, and nothing is charged again."""
    import shutil

    def sweep():
        return _sweep(tmp_path, base={"output": "x", "epochs": 1, "sigma": 2.0},
                      space={"quality": {"grid": [0.3, 0.7]}}, budget=str(tmp_path / "budget"))

    out = tmp_path / "sweep"
    sweep().run(Reporter(quiet=True))
    ledger = open(next((tmp_path / "budget").iterdir())).read()
    shutil.rmtree(out / "tune")
    sweep().run(Reporter(quiet=True))
    assert (starts(out, 0), starts(out, 1)) == (1, 1)
    rows = pd.read_csv(out / "results.csv")
    assert sorted(rows["score"]) == [0.3, 0.7]
    assert open(next((tmp_path / "budget").iterdir())).read() == ledger


def test_trials_stopped_early_are_not_charged_again_on_a_resume(ray_local, tmp_path):
    """ASHA's stopped trials ended without a final report: the driver recorded their end, so
    running the finished sweep again charges nothing and trains nothing."""
    def sweep():
        return _sweep(tmp_path, space={"quality": {"grid": [0.9, 0.1, 0.2]}}, scheduler="asha", grace=1,
                      concurrent=1, base={"output": "x", "epochs": 3, "sigma": 2.0}, budget=str(tmp_path / "budget"))

    sweep().run(Reporter(quiet=True))
    out = tmp_path / "sweep"
    assert pd.read_csv(out / "results.csv")["stopped_early"].sum() >= 1
    ledger = open(next((tmp_path / "budget").iterdir())).read()
    sweep().run(Reporter(quiet=True))
    assert open(next((tmp_path / "budget").iterdir())).read() == ledger
    assert [starts(out, i) for i in range(3)] == [1, 1, 1]


def test_private_selection_charges_re_runs_without_telling_how_many(ray_local, tmp_path):
    """Every privately selected trial fails at first; the resume trains them again and charges
    them, but the winner's release and the log lines state the selection's ε alone: the re-runs
    (and so the secret number of trials) are told only in the owner's manifest and ledger."""
    def sweep():
        return _sweep(tmp_path, space={"sigma": {"choice": [2.0]}, "fail_first": {"choice": [True]}},
                      base={"output": "x", "epochs": 1}, selection="private", mean_trials=2,
                      budget=str(tmp_path / "b"))

    from raypriv.errors import RayprivError
    from raypriv.privacy.budget import DatasetBudget

    with pytest.raises(RayprivError, match="no trial of the sweep"):
        sweep().run(Reporter(quiet=True))
    reporter = Reporter(quiet=True)
    again = sweep().run(reporter)
    out = tmp_path / "sweep"
    manifest = json.loads((out / "manifest.json").read_text())
    winner = json.loads((out / "release" / "winner.json").read_text())
    budget = DatasetBudget(manifest["privacy"]["dataset"]["path"], {"delta": 1e-5})
    selection = [e for e in budget.entries() if e["kind"] == "private-selection"]
    assert len(selection) == 1 and len(budget.entries()) == 2                   # the selection, then the re-runs
    assert winner["privacy"]["epsilon"] == pytest.approx(budget.curve(selection).epsilon(1e-5), rel=1e-9)
    assert again.privacy["epsilon"] == winner["privacy"]["epsilon"]
    assert manifest["privacy"]["reruns"] >= 1 and manifest["privacy"]["rerun_epsilon"] > winner["privacy"]["epsilon"]
    assert winner["settings"] == {"sigma": 2.0, "fail_first": True}
    assert not any("dataset has spent" in line or "trial(s)" in line for line in reporter.lines)


def test_a_sweep_past_the_datasets_budget_is_refused_with_nothing_run(ray_local, tmp_path):
    sweep = _sweep(tmp_path, space={"sigma": {"grid": [1.0, 1.0, 1.0]}}, budget=str(tmp_path / "b"),
                   epsilon_budget=3.0)                                        # three runs: 3.51
    with pytest.raises(BudgetExhaustedError, match="past its budget of 3"):
        sweep.run(Reporter(quiet=True))
    assert not (tmp_path / "sweep").exists()
    (ledger,) = (tmp_path / "b").iterdir()
    assert len(ledger.read_text().splitlines()) == 1                         # the header only
    with pytest.raises(ConfigError, match="budget"):
        _sweep(tmp_path, space={"sigma": {"grid": [1.0]}}).run(Reporter(quiet=True))


def test_private_selection_releases_only_the_winner(ray_local, tmp_path):
    from dp_accounting.dp_event import RepeatAndSelectDpEvent
    import dp_accounting as dpa

    sweep = _sweep(tmp_path, space={"sigma": {"choice": [1.0, 2.0]}, "quality": {"grid": [0.3, 0.6]}},
                   selection="private", mean_trials=3, budget=str(tmp_path / "b"))
    result = sweep.run(Reporter(quiet=True))
    out = tmp_path / "sweep"
    manifest = json.loads((out / "manifest.json").read_text())
    assert "trials_finished" not in manifest and "frontier" not in manifest and "errors" not in manifest
    winner = json.loads((out / "release" / "winner.json").read_text())
    rows = pd.read_csv(out / "results.csv")
    assert winner["score"] == rows["score"].max() and set(winner["settings"]) == {"sigma", "quality"}
    worst = dpa.SelfComposedDpEvent(dpa.PoissonSampledDpEvent(0.01, dpa.GaussianDpEvent(1.0)), 1000)
    bound = dpa.rdp.RdpAccountant().compose(RepeatAndSelectDpEvent(worst, 3.0, 1.0)).get_epsilon(1e-5)
    assert winner["privacy"]["epsilon"] == pytest.approx(bound, rel=1e-4) == result.privacy["epsilon"]
    assert set(result.metrics) == {"privacy.sweep_epsilon", "privacy.max_trial_epsilon"}     # nothing tells K


def test_bad_sweeps_are_refused_before_anything_runs(tmp_path):
    with pytest.raises(ConfigError, match="unknown job"):
        _sweep(tmp_path, job="sweeptests")
    with pytest.raises(ConfigError, match="space.quality"):
        _sweep(tmp_path, space={"quality": {"normal": [0, 1]}})
    with pytest.raises(ConfigError, match="imports"):
        _sweep(tmp_path, imports=["no.such.module"])
    with pytest.raises(ConfigError, match="early stopping"):
        _sweep(tmp_path, selection="private", scheduler="asha")
    with pytest.raises(ConfigError, match="private selection .* finite|grid, choice or randint"):
        _sweep(tmp_path, selection="private", space={"sigma": {"uniform": [1, 2]}}, budget=str(tmp_path)).run(
            Reporter(quiet=True))
    with pytest.raises(ConfigError, match="space.output"):
        _sweep(tmp_path, space={"output": {"grid": ["a", "b"]}})
    with pytest.raises(ConfigError, match="mean_trials"):
        _sweep(tmp_path, selection="private", mean_trials=1)
    with pytest.raises(ConfigError, match="validation"):
        _sweep(tmp_path, space={"quality": {"grid": [1]}}, validation=0.2).run(Reporter(quiet=True))
    with pytest.raises(ConfigError, match="trial 0 epochz"):
        _sweep(tmp_path, space={"epochz": {"grid": [1, 2]}}).run(Reporter(quiet=True))
    with pytest.raises(ConfigError, match="base.checkpoints: trials would share"):
        _sweep(tmp_path, base={"output": "x", "checkpoints": "s3://b/c"})
    with pytest.raises(ConfigError, match="storage: 's3://b/s\\?scheme=http': options"):
        _sweep(tmp_path, storage="s3://b/s?scheme=http")
    assert not (tmp_path / "sweep").exists()


def test_trials_keep_their_checkpoints_under_the_sweeps_storage_made_absolute(tmp_path, monkeypatch):
    from raypriv.sweeps import SweepJob
    from raypriv.sweeps.trials import trial_settings

    monkeypatch.chdir(tmp_path)                 # Tune runs trials in directories of their own: no relative paths
    settings = {"job": "dpvae.pipeline", "output": "out", "storage": "rel/store", "validation": 0,
                "base": {"source": "digits", "output": "x"}, "space": {"train.epsilon": {"grid": [1]}}}
    sweep = SweepJob.from_dict(settings)
    assert trial_settings(sweep, {"train.epsilon": 1}, 0)["checkpoints"] == str(tmp_path / "rel/store/trials/000")
    assert sweep.tune_path() == str(tmp_path / "rel" / "store" / "tune")
    remote = SweepJob.from_dict({**settings, "storage": "s3://bucket/sweep/"})
    assert trial_settings(remote, {"train.epsilon": 1}, 3)["checkpoints"] == "s3://bucket/sweep/trials/003"
