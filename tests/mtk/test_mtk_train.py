"""MTK end to end on Ray: the pipeline job trains with Ray Train (2 workers), the key gates the
secured digit, the key stays out of the model, evaluation and predictions follow the key.

One model is trained for the module (under a minute, without the gate hardening, which
benchmarks/mtk_tradeoff.py measures); the tests read it."""
import json
import os
import stat

import numpy as np
import pytest

from raypriv.errors import ConfigError, DataError
from raypriv.mtk.keys import KeyFileError, KeySet

EPOCHS = 5          # the smoke config's 2 epochs on 4,000 images already gate the digit (97 % keyed)


@pytest.fixture(scope="module")
def subsets(ray_local):
    from raypriv.data import load_corpus
    from raypriv.data.holdout import holdout

    # holdout draws rows by id hash: a class-balanced random subset of the (class-sorted) digits
    _, train = holdout(load_corpus("mnist5k-tasks"), fraction=0.6)
    _, test = holdout(load_corpus("mnist5k-tasks", split="test"), fraction=0.5)
    return train, test


@pytest.fixture(scope="module")
def pipeline(ray_local, subsets, tmp_path_factory):
    """``raypriv mtk pipeline`` on 60 % of mnist5k-tasks, written as Parquet with its label columns
    (the user's own multi-task corpus path): key file, model, evaluation report."""
    from raypriv.data.writer import write_corpus
    from raypriv.jobs.base import Reporter
    from raypriv.manifest import build_manifest
    from raypriv.mtk.job import MtkPipelineJob

    root = tmp_path_factory.mktemp("mtk")
    for split, part in (("train", subsets[0]), ("test", subsets[1])):
        write_corpus(part, str(root / "tasks" / split), manifest=build_manifest(method="copy"))
    reporter = Reporter(quiet=True)
    job = MtkPipelineJob.from_dict({
        "source": f"parquet:{root / 'tasks'}", "keys": str(root / "digit.keys"),
        "output": str(root / "run"),
        "mtk": {"gate_attack_steps": 0, "train": {"epochs": EPOCHS}},
        "audit": {"sizes": [100, 5000], "steps": 10, "restarts": 1},
        "resources": {"workers": 2}})
    outcome = job.run(reporter=reporter)
    return {"root": root, "outcome": outcome, "log": "\n".join(reporter.lines), "job": job}


def _report(pipeline) -> dict:
    with open(pipeline["root"] / "run" / "eval" / "report.json") as f:
        return json.load(f)


def test_the_key_gates_the_secured_task(pipeline):
    acc = _report(pipeline)["accuracy"]
    history = json.loads((pipeline["root"] / "run" / "model" / "manifest.json").read_text())["history"]
    assert acc["key:digit"]["digit"] > 0.85, history            # the key holder gets the digit
    for cond in ("none", "forged:digit"):                       # chance is 10 %
        assert abs(acc[cond]["digit"] - 0.10) < 0.05, (cond, acc[cond])
    assert _report(pipeline)["locked"]["none"]["digit"] > 0.9   # the model answers "locked"
    for task in ("parity", "ge5", "loop"):                      # unsecured tasks answer without a key
        assert acc["none"][task] > 0.9


def test_the_report_has_leakage_references_and_the_audit(pipeline):
    report = _report(pipeline)
    leak = report["leakage"]["digit"]
    assert leak["base_rate"] < 0.2 < leak["irreducible"] <= leak["from_all_outputs"]
    audit = report["audit"]
    unlocked = audit["tasks"]["digit"]["100"]["unlocked"]
    assert 0 <= unlocked <= 1 and audit["scored_rows"] > 100
    # 5,000 attacker images were asked for, the held-out half holds fewer: the whole pool is audited
    # and the report says so (before, the job failed after scoring every key condition)
    pool = audit["attacker_pool"]
    assert 100 < pool < 5000 and list(audit["tasks"]["digit"]) == ["100", str(pool)]
    assert f"sizes [100, 5000] were audited as [100, {pool}]" in audit["note"]
    assert audit["note"] in (pipeline["root"] / "run" / "eval" / "report.txt").read_text()


def test_the_key_is_nowhere_but_in_its_0600_file(pipeline):
    root = pipeline["root"]
    key_file = root / "digit.keys"
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    keys = KeySet.load(str(key_file))
    pattern = keys.pattern("digit")
    secret = json.loads(key_file.read_text())["keys"]["digit"]
    model_dir = root / "run" / "model"
    manifest = json.loads((model_dir / "manifest.json").read_text())
    assert "key_digests" in manifest and secret not in json.dumps(manifest)
    for path in root.rglob("*"):
        if path.is_file() and path != key_file:
            assert secret.encode() not in path.read_bytes(), path
    assert secret not in pipeline["log"]
    # the weights do not hold the pattern either (no tensor of the image's size equals it)
    import torch

    state = torch.load(model_dir / "model.pt", weights_only=False)
    flat = pattern.reshape(-1).astype(np.float32)
    for tensor in _tensors(state):
        t = tensor.detach().cpu().numpy().reshape(-1)
        assert t.size != flat.size or not np.allclose(t, flat)


def _tensors(obj):
    import torch

    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, dict):
        for v in obj.values():
            yield from _tensors(v)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            yield from _tensors(v)


def test_predict_answers_the_secured_task_only_with_the_key(pipeline, subsets):
    from raypriv.mtk.predict import LOCKED, predict
    from raypriv.mtk.train import load_model

    model = load_model(str(pipeline["root"] / "run" / "model"))
    keys = model.load_keys(str(pipeline["root"] / "digit.keys"))
    rows = subsets[1].ds.take(200)
    images = np.stack([r["image"] for r in rows])
    labels = np.array([r["label"] for r in rows])
    with_key, without = predict(model, images, keys), predict(model, images)
    assert (with_key["digit"] == labels).mean() > 0.85
    assert (without["digit"] == LOCKED).mean() > 0.9
    assert (without["parity"] == labels % 2).mean() > 0.9


def test_a_rerun_reuses_the_finished_stages(pipeline):
    from raypriv.jobs.base import Reporter

    reporter = Reporter(quiet=True)
    result = pipeline["job"].run(reporter=reporter)
    assert sum("reusing" in line for line in reporter.lines) == 2
    assert result.metrics == pipeline["outcome"].metrics


def test_another_models_key_file_and_an_open_key_file_are_refused(pipeline, tmp_path):
    from raypriv.mtk.train import load_model

    model = load_model(str(pipeline["root"] / "run" / "model"))
    other = KeySet.generate(("digit",), image_shape=(28, 28, 1))
    path = other.save(str(tmp_path / "other.keys"))
    with pytest.raises(KeyFileError, match="not this model.s"):
        model.load_keys(path)
    os.chmod(path, 0o644)
    with pytest.raises(KeyFileError, match="may be read by others"):
        KeySet.load(path)


def test_unknown_and_single_class_tasks_are_refused(ray_local, tmp_path):
    from raypriv.data import load_corpus
    from raypriv.mtk.config import task_layout

    info = load_corpus("mnist5k-tasks", split="test").info
    with pytest.raises(ConfigError, match=r"unknown task\(s\) \['colour'\]"):
        task_layout(info, secured=("colour",))
    one = type(info)(**{**info.__dict__, "label_columns": tuple(
        type(c)(**{**c.__dict__, "num_classes": 1, "class_names": ("x",)}) if c.name == "parity" else c
        for c in info.label_columns)})
    with pytest.raises(ConfigError, match="have one class"):
        task_layout(one, secured=("parity",))


def test_hardening_and_decoupling_start_once_the_gate_has_formed_and_stay_on():
    from raypriv.mtk.config import MtkConfig, TaskLayout
    from raypriv.mtk.worker import gate_formed, hardening_on

    layout = TaskLayout(("digit", "parity"), (10, 2), ("digit",), locked=True)
    cfg = MtkConfig(gate_attack_after=0.9)
    epoch = lambda acc, on=False: {"acc": {"digit": acc, "parity": 0.99}, "hardening": on}  # noqa: E731
    assert not hardening_on([], layout, cfg)
    assert not hardening_on([epoch(0.1), epoch(0.8)], layout, cfg)          # the gate has not formed yet
    assert hardening_on([epoch(0.1), epoch(0.95)], layout, cfg)
    assert hardening_on([epoch(0.95, on=True), epoch(0.7, on=True)], layout, cfg)   # a dip does not stop it
    assert not hardening_on([epoch(0.95)], layout, MtkConfig(gate_attack_steps=0))
    # the decoupling term starts at the same moment, hardening or not
    assert not gate_formed([epoch(0.1), epoch(0.8)], layout, cfg)
    assert gate_formed([epoch(0.95), epoch(0.7)], layout, MtkConfig(gate_attack_steps=0))


def test_a_diverging_run_fails_clearly_and_saves_no_model(subsets, tmp_path):
    """A learning rate that blows the loss up stops training with the fix in the message, and
    leaves no finished model (before, a NaN model was saved and crashed the leakage probe)."""
    import dataclasses

    from raypriv.errors import RayprivError
    from raypriv.manifest import is_finished
    from raypriv.mtk import MtkConfig, train_mtk
    from raypriv.runtime import ResourceSpec

    small = subsets[0].subsample(0.1)
    config = MtkConfig(gate_attack_steps=0, decoupling=0.5,
                       train=dataclasses.replace(MtkConfig().train, epochs=1, lr=1e6))
    keys = KeySet.generate(("digit",), image_shape=small.info.image_shape)
    with pytest.raises(RayprivError, match=r"diverged in epoch 1 .*lower train\.lr"):
        train_mtk(small, keys, config=config, output=str(tmp_path / "m"), resources=ResourceSpec(workers=2),
                  progress=lambda line: None)
    assert not is_finished(str(tmp_path / "m"))



def interrupt_after_epoch_2(*, epoch, rank):       # shipped to the workers by value
    if epoch == 2 and rank == 0:
        raise RuntimeError("simulated crash after epoch 2")


def test_an_interrupted_run_resumes_and_a_run_of_other_keys_does_not(subsets, tmp_path):
    """The crash leaves epoch 2's checkpoint; a re-run with other keys is refused (it would have
    continued the old weights under the new keys' digests); the same run resumes: its first epochs
    are the interrupted run's own records (their wall times too), not a re-training. Decoupling
    (with the memory across workers) is on once the gate has formed."""
    import dataclasses
    import glob

    import torch

    from raypriv.errors import ArtifactError
    from raypriv.manifest import is_finished
    from raypriv.mtk import MtkConfig, train_mtk
    from raypriv.mtk.train import default_checkpoint_dir, load_model
    from raypriv.mtk.worker import gate_formed
    from raypriv.runtime import ResourceSpec
    from raypriv.runtime.train import TrainingError

    small = subsets[0].subsample(0.1)
    config = MtkConfig(gate_attack_steps=0, decoupling=0.5, decoupling_rows=16,
                       train=dataclasses.replace(MtkConfig().train, epochs=3))
    keys = KeySet.generate(("digit",), image_shape=small.info.image_shape)
    out, two = str(tmp_path / "m"), ResourceSpec(workers=2)
    with pytest.raises(TrainingError, match="simulated crash after epoch 2"):
        train_mtk(small, keys, config=config, output=out, resources=two, progress=lambda line: None,
                  epoch_hook=interrupt_after_epoch_2)
    assert not is_finished(out)
    [saved] = glob.glob(f"{default_checkpoint_dir(out)}/*/checkpoint_*/state.pt")
    state = torch.load(saved, weights_only=False)
    before = state["history"]
    # the secured term's memory of both workers' rows is checkpointed with the run (not the model)
    assert state["decoupling_memory"]["rows"] == 16 and state["decoupling_memory"]["kept"]
    assert "decoupling_memory" not in state["model"]
    assert 1 <= len(before) <= 2
    other = KeySet.generate(("digit",), image_shape=small.info.image_shape)
    with pytest.raises(ArtifactError, match=r"holds an interrupted MTK run .* of other settings, data or keys"):
        train_mtk(small, other, config=config, output=out, resources=two, progress=lambda line: None)
    lines = []
    train_mtk(small, keys, config=config, output=out, resources=two, progress=lines.append)
    assert f"resuming the interrupted run in {default_checkpoint_dir(out)} after epoch {len(before)}" in lines
    history = load_model(out).manifest["history"]
    assert [h["epoch"] for h in history] == [1, 2, 3]
    layout = load_model(out).layout
    assert [h["decoupling"] for h in history] == [0.5 if gate_formed(history[:i], layout, config) else 0.0
                                                  for i in range(3)]
    assert history[:len(before)] == before                  # carried over, wall times and all
    assert not os.path.exists(default_checkpoint_dir(out))


def test_overwrite_discards_an_interrupted_run_of_other_keys(tmp_path):
    """What a re-run with ``overwrite`` does to checkpoints it cannot resume (the decision is the
    driver's, before any worker starts)."""
    import torch

    from raypriv.errors import ArtifactError
    from raypriv.mtk.train import RUN_NAME, interrupted_run

    ckpt = tmp_path / "m.checkpoints"
    (ckpt / RUN_NAME / "checkpoint_1").mkdir(parents=True)
    torch.save({"epoch": 2, "run": "old"}, ckpt / RUN_NAME / "checkpoint_1" / "state.pt")
    lines = []
    interrupted_run(str(ckpt), "old", overwrite=False, progress=lines.append)
    assert lines == [f"resuming the interrupted run in {ckpt} after epoch 2"]
    with pytest.raises(ArtifactError, match="after epoch 2.*pass overwrite=True"):
        interrupted_run(str(ckpt), "new", overwrite=False, progress=lines.append)
    assert ckpt.exists()
    (ckpt / "someone-elses").write_text("kept")                 # a location may hold more than this run
    interrupted_run(str(ckpt), "new", overwrite=True, progress=lines.append)
    assert not (ckpt / RUN_NAME).exists() and lines[-1].startswith("discarding the interrupted run")
    assert (ckpt / "someone-elses").read_text() == "kept"


def test_a_corpus_or_images_that_do_not_fit_the_model_are_refused_before_any_work(pipeline, subsets, tmp_path):
    from raypriv.mtk.job import MtkEvaluateJob
    from raypriv.mtk.predict import predict
    from raypriv.mtk.train import load_model

    model_dir, keys = str(pipeline["root"] / "run" / "model"), str(pipeline["root"] / "digit.keys")
    out = tmp_path / "eval"
    with pytest.raises(DataError, match="mixed image sizes"):                      # 28x56 pairs, a 28x28 model
        MtkEvaluateJob(model=model_dir, source="mnist5k-pairs", keys=keys, output=str(out)).run()
    with pytest.raises(ConfigError, match=r"unknown task\(s\) \['digit', 'parity', 'ge5', 'loop'\]; mnist5k has"):
        MtkEvaluateJob(model=model_dir, source="mnist5k", keys=keys, output=str(out)).run()
    with pytest.raises(ConfigError, match="leakage_of: unknown task"):
        MtkEvaluateJob(model=model_dir, source="mnist5k-tasks", keys=keys, output=str(out), leakage_of=("x",)).run()
    with pytest.raises(ConfigError, match="secures digit: pass its key file"):
        MtkEvaluateJob(model=model_dir, source="mnist5k-tasks", output=str(out)).run()
    assert not out.exists()
    model = load_model(model_dir)
    images = np.stack([r["image"] for r in subsets[1].ds.take(4)])
    with pytest.raises(ConfigError, match="must be uint8"):
        predict(model, images.astype(np.float32) / 255)
    with pytest.raises(KeyFileError, match="not this model.s"):
        predict(model, images, KeySet.generate(("digit",), image_shape=(28, 28, 1)))


def test_the_ordinary_multi_task_model_trains_and_evaluates_through_the_jobs(subsets, tmp_path):
    """No key file: the baseline MTK is compared with, evaluated for the leakage of the task its
    MTK counterpart secures; there is no gate, so no audit."""
    from raypriv.data.writer import write_corpus
    from raypriv.jobs.base import Reporter
    from raypriv.manifest import build_manifest
    from raypriv.mtk.job import MtkEvaluateJob, MtkTrainJob

    for split, part in (("train", subsets[0]), ("test", subsets[1])):
        write_corpus(part, str(tmp_path / "tasks" / split), manifest=build_manifest(method="copy"))
    source, reporter = f"parquet:{tmp_path / 'tasks'}", Reporter(quiet=True)
    MtkTrainJob.from_dict({"source": source, "output": str(tmp_path / "plain"), "resources": {"workers": 1},
                           "mtk": {"train": {"epochs": 3, "lr": 0.05}}}).run(reporter)
    MtkEvaluateJob.from_dict({"model": str(tmp_path / "plain"), "source": source, "output": str(tmp_path / "eval"),
                              "leakage_of": ["digit"], "resources": {"workers": 1}}).run(reporter)
    report = json.loads((tmp_path / "eval" / "report.json").read_text())
    assert list(report["accuracy"]) == ["none"] and report["accuracy"]["none"]["digit"] > 0.25   # chance 0.1
    leak = report["leakage"]["digit"]
    assert leak["base_rate"] < min(leak["irreducible"], leak["from_all_outputs"])
    assert "audit" not in report and any("audit is skipped" in line for line in reporter.lines)
    assert any("training the ordinary multi-task model" in line for line in reporter.lines)
