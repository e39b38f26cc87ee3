"""DP²-VAE training end to end on Ray Train: the manifest's privacy record, the ledger across
a crash between checkpoints, refusal past the budget, bad input; then sampling and the report."""
import dataclasses
import json
import os

import pytest

from raypriv.data import load_corpus
from raypriv.dpvae import DPVAEConfig, Mechanism, PrivacyLedger, epsilon, sample_dpvae, train_dpvae
from raypriv.privacy.ledger import BudgetExhaustedError
from raypriv.errors import ArtifactError, ConfigError
from raypriv.runtime import ResourceSpec
from raypriv.runtime.train import TrainingError

from tests.dpvae.dpvae_helpers import TINY, release
from tests.privacy.accountants import dp_accounting_epsilon

def test_two_stage_run_records_its_privacy_in_the_manifest(trained):
    out, lines = trained
    m = json.load(open(release(out)))
    p = m["privacy"]
    assert m["method"] == "dpvae" and m["params"]["method"] == "dp2" and m["raypriv_version"]
    assert [s["name"] for s in p["stages"]] == ["pretrain", "main"]
    assert all(s["steps_charged"] == s["steps"] == 12 for s in p["stages"])
    assert p["stages"][0]["sigma"] > p["stages"][1]["sigma"] > 0          # stage 1 gets the smaller share
    assert TINY["epsilon"] * 0.99 <= p["epsilon_spent"] <= TINY["epsilon"] and p["accountant"] == "prv"
    # ε of the recorded mechanisms by an independent accountant, not by the code that wrote it
    recorded = [Mechanism(sigma=st["sigma"], sample_rate=st["sample_rate"], steps=st["steps_charged"])
                for st in p["stages"]]
    pld = dp_accounting_epsilon(recorded, delta=TINY["delta"], kind="pld")
    assert 0.98 * TINY["epsilon"] <= pld <= p["epsilon_spent"] * 1.005
    # the ledger holds one durable line per step, and its ε is the manifest's
    ledger = PrivacyLedger.open(os.path.join(out, "privacy-ledger.jsonl"))
    assert ledger.epsilon_spent() == pytest.approx(p["epsilon_spent"])
    assert sum(1 for _ in open(ledger.path)) == 1 + 24
    assert any("ε spent" in line for line in lines)                    # ε printed while training
    assert os.path.getsize(release(out, "model.pt")) > 1000


def test_steps_after_the_last_checkpoint_stay_charged_and_are_not_rerun(digits, tmp_path):
    """Crash inside step 7 of the main stage, before its update (checkpoint at 4). The worker
    itself, a different process from the one that writes the ledger, reads step 7 as charged
    on disk before the update exists, so the charge precedes the step and is not merely queued.
    The resumed run continues after step 7 from the step-4 weights; re-running steps 5–7 would
    need charges past the plan, which the ledger refuses, so finishing proves they were not
    re-run, and the final ε is exactly the plan's. Ray Train's checkpoints live in the session's
    S3-compatible object store (the ledger stays in the local run directory)."""
    from raypriv import storage
    from raypriv.runtime.train import saved_state
    from tests.conftest import s3_prefix

    cfg = DPVAEConfig(**{**TINY, "method": "dpsgd"})            # one stage of 24 steps
    out, ckpt = str(tmp_path / "run"), s3_prefix("dpvae-checkpoints")
    run = dict(config=cfg, resources=ResourceSpec(workers=1), progress=lambda m: None, checkpoints=ckpt)

    def crash_in_step_7(*, stage, step, output):     # defined here: shipped to the worker by value
        if step == 7:
            on_disk = PrivacyLedger.open(os.path.join(output, "privacy-ledger.jsonl")).charged(stage)
            raise RuntimeError(f"simulated crash in step {step} of stage {stage} before its update, "
                               f"with {on_disk} steps of {stage} charged on disk")

    with pytest.raises(TrainingError, match="re-run with resume=True") as crash:
        train_dpvae(digits, output=out, step_hook=crash_in_step_7, **run)
    assert "crash in step 7 of stage main before its update, with 7 steps of main charged on disk" in str(
        crash.value), crash.value
    ledger = PrivacyLedger.open(os.path.join(out, "privacy-ledger.jsonl"))
    assert ledger.charged("main") == 7 and not os.path.exists(release(out))
    where = json.load(open(os.path.join(out, "checkpoints.json")))       # a location of this run's own
    assert where["base"] == ckpt and where["location"].startswith(f"{ckpt}/run-")
    assert saved_state(where["location"], "ray-train")["step"] == 4
    assert not os.path.exists(os.path.join(out, "ray-train"))
    with pytest.raises(ArtifactError, match="not empty; pass resume=True"):
        train_dpvae(digits, output=out, **run)
    with pytest.raises(ArtifactError, match="keeps its checkpoints in s3://"):    # the run's own, only
        train_dpvae(digits, output=out, resume=True, **{**run, "checkpoints": s3_prefix("elsewhere")})
    with pytest.raises(ArtifactError, match="keeps its checkpoints in s3://"):
        train_dpvae(digits, output=out, resume=True, **{**run, "checkpoints": None})
    train_dpvae(digits, output=out, resume=True, **run)
    m = json.load(open(release(out)))
    (stage,) = m["privacy"]["stages"]
    assert stage["steps_charged"] == stage["steps"] == 24       # ceil(4 epochs / q), q = 256 / 1500 declared
    planned = epsilon(PrivacyLedger.open(os.path.join(out, "privacy-ledger.jsonl")).mechanisms(), delta=TINY["delta"])
    assert m["privacy"]["epsilon_spent"] == pytest.approx(planned) and planned <= TINY["epsilon"]
    kept = storage.subdirectories(storage.join(where["location"], "ray-train"))
    assert any(d.startswith("checkpoint_") for d in kept)
    with pytest.raises(ArtifactError, match="budget is spent"):           # a finished run cannot go on
        train_dpvae(digits, output=out, resume=True, **run)


def test_resuming_when_every_planned_step_is_charged_is_refused(digits, tmp_path):
    cfg = DPVAEConfig(**{**TINY, "method": "dpsgd"})
    out = tmp_path / "run"
    from raypriv.dpvae.train import _ledger_stages, plan_stages

    plans = plan_stages(cfg, train_rows=digits.info.num_rows)
    led = PrivacyLedger.create(str(out / "privacy-ledger.jsonl"), epsilon=cfg.epsilon, delta=cfg.delta,
                               accountant=cfg.accountant, stages=_ledger_stages(plans),
                               extra={"config": cfg.to_dict(), "input_fingerprint": digits.keyed_fingerprint(),
                                      "plan": [dataclasses.asdict(p) for p in plans]})
    for _ in range(plans[0].steps):
        led.charge("main")
    with pytest.raises(BudgetExhaustedError, match="budget is exhausted"):
        train_dpvae(digits, config=cfg, output=str(out), resources=ResourceSpec(workers=1), resume=True,
                    progress=lambda m: None)


def test_public_pretraining_is_not_charged(digits, tmp_path):
    """Stage 1 on a public corpus: no noise, no ledger entries; the whole ε goes to stage 2, whose
    σ spends the whole ε alone; the manifest names the public corpus."""
    from raypriv.dpvae.train import plan_stages

    public = load_corpus("digits", split="test")              # stands in for a public corpus
    cfg = DPVAEConfig(**{**TINY, "pretrain_on": "public", "pretrain_epochs": 1, "epochs": 1})
    out = str(tmp_path / "run")
    with pytest.raises(ConfigError, match="public corpus is only used"):
        train_dpvae(digits, config=DPVAEConfig(**TINY), output=out, public=public, progress=lambda m: None)
    train_dpvae(digits, config=cfg, output=out, public=public, resources=ResourceSpec(workers=2),
                progress=lambda m: None)
    m = json.load(open(release(out)))
    (main,) = m["privacy"]["stages"]
    plans = plan_stages(cfg, train_rows=digits.info.num_rows, public_rows=public.info.num_rows)
    assert [p.private for p in plans] == [False, True] and plans[0].steps == 2        # ceil(1 / (256 / 360))
    # independent of raypriv's σ search: dp-accounting's PLD of stage 2 alone spends the whole target
    pld = dp_accounting_epsilon([Mechanism(sigma=main["sigma"], sample_rate=main["sample_rate"],
                                           steps=main["steps"])], delta=TINY["delta"], kind="pld")
    assert main["name"] == "main" and 0.98 * TINY["epsilon"] <= pld <= TINY["epsilon"] * 1.005
    ledger = PrivacyLedger.open(os.path.join(out, "privacy-ledger.jsonl"))
    assert ledger.charged("main") == main["steps"] and sum(1 for _ in open(ledger.path)) == 1 + main["steps"]
    assert m["public_source"] == "digits" and m["public_fingerprint"] == public.fingerprint()


def test_delta_not_below_one_over_n_is_refused_before_training(digits, tmp_path):
    with pytest.raises(ConfigError, match=r"delta.*N = 1500"):          # the larger of declared and true
        train_dpvae(digits, config=DPVAEConfig(**{**TINY, "delta": 1e-3}), output=str(tmp_path / "x"),
                    resources=ResourceSpec(workers=1), progress=lambda m: None)
    assert not os.path.exists(tmp_path / "x")


def test_sample_and_evaluate_through_the_cli(trained, tmp_path, capsys):
    from raypriv.cli import main

    out, _ = trained
    synth = str(tmp_path / "synth")
    assert main(["dpvae", "sample", "--model", out, "-o", synth, "--images-per-class", "30", "--temperature", "0.8",
                 "--workers", "2"]) == 0
    corpus = load_corpus(f"parquet:{synth}")
    rows = corpus.ds.take_all()
    assert len(rows) == 300 and sorted({int(r["label"]) for r in rows}) == list(range(10))
    assert rows[0]["image"].shape == (8, 8, 1)
    m = json.load(open(os.path.join(synth, "manifest.json")))
    model_manifest = json.load(open(release(out)))
    assert m["privacy"] == model_manifest["privacy"] and m["method"] == "dpvae-sample"   # inherited exactly
    assert m["input_fingerprint"] == model_manifest["input_fingerprint"]
    assert m["params"]["temperature"] == 0.8
    again = str(tmp_path / "again")
    sample_dpvae(out, output=again, images_per_class=30, temperature=0.8, resources=ResourceSpec(workers=1),
                 progress=lambda m: None)
    assert load_corpus(f"parquet:{again}").fingerprint() == corpus.fingerprint()      # same seed, same images
    ev = str(tmp_path / "eval")
    assert main(["dpvae", "evaluate", "--synthetic", synth, "--real", "digits", "-o", ev, "--epochs", "2",
                 "--workers", "2"]) == 0
    report = json.load(open(os.path.join(ev, "report.json")))
    assert 0 <= report["downstream_test_acc"] <= 1 and report["frechet_distance"] > 0
    assert report["real_data_test_acc"] > 0.5 and 0 <= report["label_agreement"] <= 1
    assert report["privacy"]["covered_by_epsilon"] is False          # a non-private classifier of the real data
    assert report["victim"]["epochs"] == 2 and isinstance(report["victim"]["augment"], bool)   # structured values
    assert os.path.getsize(os.path.join(ev, "samples.png")) > 1000      # samples beside real images, per class
    # the downstream classifier learns from the samples: with their labels shuffled, the same
    # recipe on them falls to chance on the real test set, far below the real-data reference
    from raypriv.classifier.train import train_victim
    from raypriv.data import Corpus
    from raypriv.dpvae.config import default_victim

    def shuffle_labels(batch):
        import numpy as np

        return {**batch, "label": np.random.default_rng(0).permutation(batch["label"])}

    scrambled = Corpus(ds=corpus.ds.repartition(1).map_batches(shuffle_labels, batch_format="numpy",
                                                                batch_size=None).materialize(), info=corpus.info)
    bad = train_victim(scrambled, load_corpus("digits", split="test"), config=default_victim(epochs=2),
                       resources=ResourceSpec(workers=2), storage_path=str(tmp_path / "runs-scrambled"))
    assert bad.test_acc < 0.25 < report["real_data_test_acc"] - 0.25
    for bad in (0, -1.0, float("nan")):
        with pytest.raises(ConfigError, match="invalid temperature"):
            sample_dpvae(out, output=str(tmp_path / "bad"), images_per_class=3, temperature=bad)
    assert not os.path.exists(tmp_path / "bad")
    printed = capsys.readouterr().out
    assert "not Inception-FID" in printed and "not covered by ε" in printed
