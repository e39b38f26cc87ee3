"""What a DP-VAE run releases, and what its (ε, δ) rests on (README, "What the guarantee
covers"): secret noise, keyed fingerprints, no unnoised private statistic, no row dropped, a
plan that does not depend on the true record count, one run per ledger, the charged plan on
resume, declared classes, a public corpus disjoint from the private one."""
import dataclasses
import glob
import json
import os
import subprocess
import sys

import pytest
import torch

from raypriv.data import Corpus
from raypriv.data.corpus import row_digest
from raypriv.dpvae import DPVAEConfig, PrivacyLedger, plan_stages, train_dpvae
from raypriv.dpvae.dpsgd import StagePlan, StageRunner
from raypriv.errors import ArtifactError, ConfigError, DataError
from raypriv.runtime import ResourceSpec

from dpvae_helpers import TINY, TRUE_ROWS, release

QUIET = dict(progress=lambda m: None)


def _released_text(out: str) -> str:
    return "".join(open(p, errors="replace").read() for p in glob.glob(os.path.join(out, "release", "*.json")))


# -- 1. the noise and the batch masks cannot be replayed --------------------------------------
def test_the_noise_is_not_drawn_from_the_seeded_default_generator():
    """Seeding torch's default generator (what a recorded seed could do) must not fix the noise."""
    from raypriv.dpvae.models import build_vae

    updates = []
    for _ in range(2):
        torch.manual_seed(0)
        model = build_vae("mlp_cvae", in_channels=1, image_size=8, num_classes=10, latent_dim=4, width=8)
        plan = StagePlan(name="main", steps=1, sample_rate=0.5, sigma=1.0, max_grad_norm=1.0, lr=0.1, beta=1.0)
        runner = StageRunner(model, plan, world_size=1, grad_sample_mode="ghost")
        runner.attach(global_rows=64)
        torch.manual_seed(1)
        runner.step(torch.rand(32, 1, 8, 8, generator=torch.Generator().manual_seed(2)), torch.arange(32) % 10)
        updates.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
        runner.detach()
    assert not torch.equal(updates[0], updates[1])


def test_two_runs_with_the_same_config_and_seed_release_different_weights(trained, digits, tmp_path):
    out, _ = trained
    again = str(tmp_path / "again")
    train_dpvae(digits, config=DPVAEConfig(**TINY), output=again, resources=ResourceSpec(workers=2), **QUIET)
    a, b = (torch.load(release(d, "model.pt"), weights_only=True) for d in (out, again))
    assert a.keys() == b.keys() and any(not torch.equal(a[k], b[k]) for k in a)
    # the recorded seed is the configured one, and it is all that is recorded about randomness
    assert json.load(open(release(out)))["seed"] == TINY.get("seed", 0)
    assert "generator" not in _released_text(out) and "shard_key" not in _released_text(out)


# -- 2. fingerprints of the private data are keyed ------------------------------------------
def test_no_released_file_contains_an_unkeyed_digest_of_the_private_rows(trained, digits):
    out, _ = trained
    m = json.load(open(release(out)))
    assert m["input_fingerprint"] == digits.keyed_fingerprint() and m["input_fingerprint"].startswith("hmac-sha256:")
    ledger_header = json.loads(open(os.path.join(out, "privacy-ledger.jsonl")).readline())
    assert ledger_header["input_fingerprint"] == m["input_fingerprint"]
    digests = {f"{row_digest(r['id'], r['label'], r['image']):032x}" for r in digits.ds.take(200)}
    for path in glob.glob(os.path.join(out, "**", "*"), recursive=True):
        if os.path.isfile(path):
            text = open(path, "rb").read()
            assert digits.fingerprint().encode() not in text, path
            assert not any(d.encode() in text for d in digests), path


# -- 3. losses of private rows are not published --------------------------------------------
def test_no_unnoised_private_loss_is_printed_saved_or_released(trained):
    out, lines = trained
    m = json.load(open(release(out)))
    assert m["history"] == []                       # both stages are private: no loss anywhere
    step_lines = [line for line in lines if line.startswith("[")]
    assert step_lines and not any("loss" in line for line in step_lines)
    assert all("ε spent" in line for line in step_lines if line == step_lines[-1])
    for ckpt in glob.glob(os.path.join(out, "ray-train", "**", "state.pt"), recursive=True):
        assert torch.load(ckpt, weights_only=False)["history"] == []


# -- 4/5/8. the release: no exact count, no timing, only the published files -----------------
def test_the_release_holds_the_model_and_its_manifest_and_nothing_that_times_or_counts_the_rows(trained):
    out, _ = trained
    assert sorted(os.listdir(os.path.join(out, "release"))) == ["manifest.json", "model.pt"]
    assert {"privacy-ledger.jsonl", "ray-train"} <= set(os.listdir(out))       # these stay private
    m = json.load(open(release(out)))
    text = _released_text(out)
    assert str(TRUE_ROWS) not in text and "train_rows" not in m and "train_seconds" not in m
    assert '"t":' not in text and "seconds" not in text
    p = m["privacy"]
    assert p["neighbouring_relation"] == "add or remove one record" and p["dataset_size"] == TINY["dataset_size"]
    assert all(s["sample_rate"] == TINY["batch_size"] / TINY["dataset_size"] for s in p["stages"])


def test_the_plan_depends_on_the_declared_size_not_on_the_true_count():
    cfg = DPVAEConfig(**TINY)
    assert plan_stages(cfg, train_rows=TRUE_ROWS) == plan_stages(cfg, train_rows=TRUE_ROWS - 1) \
        == plan_stages(cfg, train_rows=TRUE_ROWS + 1)
    with pytest.raises(ConfigError, match="invalid dataset_size: a private run needs"):
        plan_stages(DPVAEConfig(**{**TINY, "dataset_size": None}), train_rows=TRUE_ROWS)
    with pytest.raises(ConfigError, match="expected batch would be 1226 instead of 256"):     # 256 · 1437 / 300
        plan_stages(DPVAEConfig(**{**TINY, "dataset_size": 300}), train_rows=TRUE_ROWS)
    # a non-private reference needs no declaration
    assert plan_stages(DPVAEConfig(**{**TINY, "method": "none", "dataset_size": None}), train_rows=TRUE_ROWS)


# -- 6. one run at a time -------------------------------------------------------------------
def test_a_second_run_on_a_locked_directory_is_refused_before_it_trains(digits, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c", "import fcntl, os, sys, time; fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT); "
         "fcntl.flock(fd, fcntl.LOCK_EX); print('locked', flush=True); time.sleep(120)", str(out / ".raypriv.lock")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(ArtifactError, match="another run holds this directory"):
            train_dpvae(digits, config=DPVAEConfig(**TINY), output=str(out), resources=ResourceSpec(workers=1),
                        **QUIET)
        assert not os.path.exists(out / "privacy-ledger.jsonl")
    finally:
        holder.kill()
        holder.wait()


def test_resume_refuses_a_plan_that_differs_from_the_one_the_ledger_charges(digits, tmp_path):
    """As after an upgrade that solves σ differently: the resumed steps would run with noise
    other than what the ledger charges for."""
    from raypriv.dpvae.train import _ledger_stages

    cfg = DPVAEConfig(**{**TINY, "method": "dpsgd"})
    plans = plan_stages(cfg, train_rows=TRUE_ROWS)
    charged = [dataclasses.replace(p, sigma=p.sigma * 0.9) for p in plans]       # less noise than planned now
    out = tmp_path / "run"
    PrivacyLedger.create(str(out / "privacy-ledger.jsonl"), epsilon=cfg.epsilon, delta=cfg.delta,
                         accountant=cfg.accountant, stages=_ledger_stages(charged),
                         extra={"config": cfg.to_dict(), "input_fingerprint": digits.keyed_fingerprint(),
                                "plan": [dataclasses.asdict(p) for p in charged]})
    with pytest.raises(ArtifactError, match="differ from those the ledger charges"):
        train_dpvae(digits, config=cfg, output=str(out), resources=ResourceSpec(workers=1), resume=True, **QUIET)


# -- 9/10. classes and the public corpus ------------------------------------------------------
def test_a_private_run_on_inferred_classes_is_refused(digits, tmp_path):
    undeclared = Corpus(ds=digits.ds, info=dataclasses.replace(digits.info, classes_declared=False))
    with pytest.raises(DataError, match="declares no class list"):
        train_dpvae(undeclared, config=DPVAEConfig(**TINY), output=str(tmp_path / "x"), **QUIET)
    assert not os.path.exists(tmp_path / "x")


def test_a_public_corpus_that_shares_images_with_the_private_one_is_refused(digits, tmp_path):
    from raypriv.data import load_corpus

    leaky = load_corpus("digits", split="all")           # the test split plus every private training image
    cfg = DPVAEConfig(**{**TINY, "pretrain_on": "public"})
    with pytest.raises(DataError, match=f"{TRUE_ROWS} of its images are also in the private training set"):
        train_dpvae(digits, config=cfg, output=str(tmp_path / "x"), public=leaky, **QUIET)
    assert not os.path.exists(tmp_path / "x")
