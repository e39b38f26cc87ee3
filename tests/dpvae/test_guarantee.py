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
from raypriv.privacy.dpsgd import StagePlan, StageRunner
from raypriv.errors import ArtifactError, ConfigError, DataError
from raypriv.runtime import ResourceSpec

from tests.dpvae.dpvae_helpers import ELBO, TINY, TRUE_ROWS, release

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
        plan = StagePlan(name="main", steps=1, sample_rate=0.5, sigma=1.0, max_grad_norm=1.0, lr=0.1)
        runner = StageRunner(model, plan, world_size=1, grad_sample_mode="ghost", loss_fn=ELBO)
        runner.attach(global_rows=64)
        torch.manual_seed(1)
        runner.step(torch.rand(32, 1, 8, 8, generator=torch.Generator().manual_seed(2)), torch.arange(32) % 10)
        updates.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
        runner.detach()
    assert not torch.equal(updates[0], updates[1])


def test_the_batch_masks_are_not_drawn_from_a_seeded_generator():
    from raypriv.dpvae.worker import SecretPoissonSampler

    masks = []
    for _ in range(2):
        torch.manual_seed(0)
        sampler = SecretPoissonSampler(500, sample_rate=0.3)
        masks += [sampler.draw(), sampler.draw()]
    assert all(not torch.equal(a, b) for i, a in enumerate(masks) for b in masks[i + 1:])
    assert 100 < len(masks[0]) < 200                    # about q·N rows


def test_two_runs_with_the_same_config_and_seed_differ_and_a_running_one_holds_its_directory(trained, digits,
                                                                                               tmp_path):
    """The second run is started in a thread; while it trains, its directory is locked."""
    import threading
    import time

    from raypriv.locks import exclusive_run

    out, _ = trained
    again = str(tmp_path / "again")
    errors = []
    run = threading.Thread(target=lambda: _catch(errors, lambda: train_dpvae(
        digits, config=DPVAEConfig(**TINY), output=again, resources=ResourceSpec(workers=2), **QUIET)))
    run.start()
    ledger = os.path.join(again, "privacy-ledger.jsonl")
    deadline = time.time() + 120
    while run.is_alive() and time.time() < deadline and not (os.path.exists(ledger) and
                                                            sum(1 for _ in open(ledger)) > 1):
        time.sleep(0.02)
    assert run.is_alive(), "the run ended before it charged a step"
    with pytest.raises(ArtifactError, match="another run holds this directory"):
        with exclusive_run(again):
            pass
    run.join()
    assert not errors, errors
    a, b = (torch.load(release(d, "model.pt"), weights_only=True) for d in (out, again))
    assert a.keys() == b.keys() and any(not torch.equal(a[k], b[k]) for k in a)
    assert json.load(open(release(out)))["seed"] == 0          # the configured seed is all that is recorded


def _catch(errors: list, fn) -> None:
    try:
        fn()
    except Exception as e:  # noqa: BLE001 - reported by the test thread
        errors.append(e)


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
    assert '"t":' not in text and "seconds" not in text and "created_at" not in m
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


def test_a_non_private_reference_is_never_written_as_a_release(digits, tmp_path):
    out = str(tmp_path / "ref")
    cfg = DPVAEConfig(**{**TINY, "method": "none", "dataset_size": None, "pretrain_epochs": 0, "epochs": 1})
    train_dpvae(digits, config=cfg, output=out, resources=ResourceSpec(workers=1), **QUIET)
    assert not os.path.exists(os.path.join(out, "release"))
    m = json.load(open(os.path.join(out, "nonprivate", "manifest.json")))
    assert m["privacy"] == {"private": False} and m["history"]           # its losses are no secret
    with pytest.raises(ArtifactError, match="this run has finished"):    # and it is never overwritten
        train_dpvae(digits, config=DPVAEConfig(**TINY), output=out, resume=True, **QUIET)


def test_a_crash_after_the_last_step_leaves_a_model_that_resume_releases_without_training(trained, digits, tmp_path):
    """Every step charged, the weights saved, the release not yet written: resuming must write
    it (the old rule refused: "budget exhausted") and must not train again."""
    import shutil

    out, _ = trained
    crashed = str(tmp_path / "crashed")
    shutil.copytree(out, crashed)
    state = torch.load(release(crashed, "model.pt"), weights_only=True)
    shutil.rmtree(os.path.join(crashed, "release"))
    torch.save({"model": state, "history": []}, os.path.join(crashed, "final-state.pt"))
    lines = []
    train_dpvae(digits, config=DPVAEConfig(**TINY), output=crashed, resume=True, progress=lines.append)
    back = torch.load(release(crashed, "model.pt"), weights_only=True)
    assert all(torch.equal(back[k], state[k]) for k in state)
    assert any("writing the model from final-state.pt" in line for line in lines)
    assert not os.path.exists(os.path.join(crashed, "final-state.pt"))


def test_resume_under_another_owner_key_names_the_key(digits, tmp_path):
    from raypriv.dpvae.train import _ledger_stages

    cfg = DPVAEConfig(**{**TINY, "method": "dpsgd"})
    plans = plan_stages(cfg, train_rows=TRUE_ROWS)
    out = tmp_path / "run"
    PrivacyLedger.create(str(out / "privacy-ledger.jsonl"), epsilon=cfg.epsilon, delta=cfg.delta,
                         accountant=cfg.accountant, stages=_ledger_stages(plans),
                         extra={"config": cfg.to_dict(), "input_fingerprint": digits.keyed_fingerprint(key=b"k" * 32),
                                "plan": [dataclasses.asdict(p) for p in plans]})
    with pytest.raises(ArtifactError, match="started under owner key .* set RAYPRIV_KEY_FILE"):
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


def test_the_cli_asks_for_the_declared_size_in_one_line_and_passes_it_on(digits, tmp_path, capsys):
    from raypriv.cli import get_args_parser, job_from_args, main

    assert main(["dpvae", "train", "digits", "-o", str(tmp_path / "x"), "--epsilon", "4", "--delta", "1e-4",
                 "--workers", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "invalid dataset_size: a private run needs" in err[0] and "--dataset-size" in err[0]
    assert not os.path.exists(tmp_path / "x")
    args = get_args_parser().parse_args(["dpvae", "train", "mnist5k", "-o", "out/dp2", "--epsilon", "10",
                                         "--dataset-size", "4000"])
    assert job_from_args(args).train.dataset_size == 4000            # the README's command, as written
