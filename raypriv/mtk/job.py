"""The MTK jobs: ``raypriv mtk keys|train|predict|evaluate`` (and the ``jobs/`` entry point).

The roles of the paper map onto separate commands: the secret-key distributor runs ``keys``
(the key file never leaves it but to authorized users), the model keeper runs ``train`` with
that key file and publishes only the model directory.

>>> job = MtkTrainJob.from_dict({"source": "mnist5k-tasks", "keys": "/tmp/k.keys", "output": "/tmp/m",
...                              "mtk": {"decoupling": 0.5, "train": {"epochs": 3}}})
>>> job.mtk.decoupling, job.mtk.train.epochs, job.mtk.train.model
(0.5, 3, 'multi_small_cnn')
"""
from __future__ import annotations

import dataclasses

from raypriv.configs import setting
from raypriv.errors import ConfigError
from raypriv.jobs.base import Job, Outcome
from raypriv.jobs.registry import register_group, register_job
from raypriv.jobs.stages import ReportStage, Stage, run_stages
from raypriv.mtk.config import AuditConfig, KeySpec, MtkConfig

SOURCE_HELP = "multi-task corpus spec: mnist5k-tasks, mnist5k-pairs, parquet:PATH (integer label columns)"

register_group("mtk", help="Multi-Trigger-Key models: secured tasks answer only with their secret key")


@register_job
@dataclasses.dataclass(frozen=True, kw_only=True)
class MtkKeysJob(Job):
    """Generate the secret trigger-keys of the secured tasks (a key file, mode 0600)."""

    name = "mtk.keys"
    LOCAL_PATHS = ("output",)
    source: str = setting(positional=True, help=SOURCE_HELP)
    output: str = setting(short="-o", help="key file to write (keep it apart from the model)")
    overwrite: bool = setting(False, help="replace an existing key file (models trained with it become unusable)")
    secured: tuple[str, ...] = setting((), help="tasks to secure, one key each (default: the corpus's main label)")
    key: KeySpec = setting(default_factory=KeySpec, flatten=True, help="the keys' form")

    def execute(self, reporter) -> Outcome:
        from raypriv.data import load_corpus

        # validated: no key is written for a corpus training would refuse
        return self.write_keys(load_corpus(self.source), reporter)

    def write_keys(self, corpus, reporter, *, tasks: tuple[str, ...] = ()) -> Outcome:
        """Generate and save the keys of ``corpus`` (already loaded); ``tasks``: the tasks training
        will use, which must include every secured one (checked before the key file is written)."""
        from raypriv.mtk.config import task_layout
        from raypriv.mtk.keys import KeySet

        layout = task_layout(corpus.info, tasks=tasks, secured=self.secured or None)
        keys = KeySet.generate(layout.secured, image_shape=corpus.info.image_shape, spec=self.key)
        path = keys.save(self.output, overwrite=self.overwrite)
        reporter(f"wrote {len(keys.tasks)} {keys.spec.form} key(s) (amplitude {keys.spec.amplitude}) for "
                 f"{', '.join(keys.tasks)} to {path} (mode 0600)")
        return Outcome(artifacts={"keys": path}, metrics={"secured_tasks": len(keys.tasks)})


@register_job
@dataclasses.dataclass(frozen=True, kw_only=True)
class MtkTrainJob(Stage):
    """Train a multi-task model whose secured tasks answer only with their key (Ray Train)."""

    name = "mtk.train"
    LOCAL_PATHS = ("output", "keys")
    STORAGE_PATHS = ("checkpoints",)
    what = "MTK model"
    source: str = setting(positional=True, help=SOURCE_HELP)
    keys: str | None = setting(None, help="key file written by `raypriv mtk keys` (without: the ordinary "
                                          "multi-task model of the same recipe, the baseline MTK is compared with)")
    output: str = setting(short="-o", help="model directory")
    split: str = setting("train", help="split of the source to train on")
    overwrite: bool = setting(False, help="replace a finished model")
    checkpoints: str | None = setting(None, help="where Ray Train keeps the run's checkpoints: a directory or a "
                                                 "pyarrow URI (default: OUTPUT.checkpoints)")
    mtk: MtkConfig = setting(default_factory=MtkConfig, flatten=True, help="MTK settings")

    def execute(self, reporter) -> Outcome:
        from raypriv.data import load_corpus
        from raypriv.mtk.keys import KeySet
        from raypriv.mtk.train import train_mtk

        keys = KeySet.load(self.keys) if self.keys else None
        if keys is None:
            reporter("no key file: training the ordinary multi-task model (no task secured)")
        model = train_mtk(load_corpus(self.source, split=self.split), keys, config=self.mtk, output=self.output,
                          resources=self.cluster(), overwrite=self.overwrite, checkpoints=self.checkpoints,
                          progress=reporter)
        return Outcome(artifacts={"model": model.path, "manifest": f"{model.path}/manifest.json"},
                       metrics=self.metrics_of(model.manifest))

    def metrics_of(self, manifest: dict) -> dict:
        last = manifest["history"][-1]
        return {"loss": last["loss"], "train_acc": last["acc"], "wall_time_s": manifest.get("wall_time_s")}


@register_job
@dataclasses.dataclass(frozen=True, kw_only=True)
class MtkEvaluateJob(ReportStage):
    """Per task, accuracy with the right key, without one, with a forged key and with other
    tasks' keys; leakage of the secured tasks through un-keyed outputs."""

    name = "mtk.evaluate"
    LOCAL_PATHS = ("model", "keys", "output")
    what = "MTK evaluation"
    files = {"table": "report.txt"}
    model: str = setting(positional=True, help="model directory written by `raypriv mtk train`")
    source: str = setting(positional=True, help="held-out multi-task corpus spec (its test split by default)")
    keys: str | None = setting(None, help="the model's key file (refused unless it holds this model's keys; "
                                          "none for an ordinary multi-task model)")
    output: str = setting(short="-o", help="report directory (report.json, report.txt, manifest.json)")
    leakage_of: tuple[str, ...] = setting((), help="tasks whose leakage through the other heads is measured "
                                                   "(default: the secured ones; for an ordinary model, name the "
                                                   "tasks its MTK counterpart secures)")
    split: str = setting("test", help="split of the source to evaluate on")
    seed: int = setting(0, help="seeds the forged keys")
    audit: AuditConfig | None = setting(default_factory=AuditConfig,
                                        help="key-recovery audit (null: skip it)")
    attacker: str | None = setting(None, help="corpus spec the audit's attacker draws its labeled images from "
                                              "(default: half of the held-out corpus)")

    def execute(self, reporter) -> Outcome:
        import os

        from raypriv.data import load_corpus
        from raypriv.files import write_text_atomic
        from raypriv.manifest import finish_report
        from raypriv.mtk.evaluate import evaluate_mtk
        from raypriv.mtk.report import format_audit, format_report
        from raypriv.mtk.train import load_model

        model = load_model(self.model)
        if model.layout.secured and not self.keys:
            raise ConfigError("keys", f"{self.model} secures {', '.join(model.layout.secured)}: pass its key file")
        keys = model.load_keys(self.keys) if self.keys else None
        test = load_corpus(self.source, split=self.split)
        reporter(f"scoring {test.info.num_rows:,} images of {test.info.source} under every key condition")
        report = evaluate_mtk(model, test, keys, resources=self.cluster(), seed=self.seed,
                              leakage_of=self.leakage_of or None)
        if self.audit is not None and keys is None:
            reporter("no key: the key-recovery audit is skipped (an ordinary model has no gate to attack)")
        elif self.audit is not None:
            from raypriv.mtk.audit import audit_keys

            reporter(f"key-recovery audit: attackers with {', '.join(map(str, self.audit.sizes))} labeled images, "
                     f"{self.audit.restarts} restarts of {self.audit.steps} steps")
            attacker = load_corpus(self.attacker) if self.attacker else None
            report["audit"] = audit_keys(model, test, keys.spec, config=self.audit, resources=self.cluster(),
                                         attacker=attacker)
        table = format_report(report) + ("\n\n" + format_audit(report["audit"]) if "audit" in report else "")
        reporter(table)
        os.makedirs(self.output, exist_ok=True)
        write_text_atomic(os.path.join(self.output, "report.txt"), table + "\n")
        params = {"model": model.path, "seed": self.seed, "audit": None if self.audit is None else
                  dataclasses.asdict(self.audit), "attacker": self.attacker, "leakage_of": list(self.leakage_of)}
        finish_report(self.output, report, method="mtk-evaluate", params=params,
                      input_fingerprint=test.keyed_fingerprint(), files=("report.txt",))
        return self.collect()

    def metrics_of_report(self, report: dict) -> dict:
        from raypriv.mtk.evaluate import summary

        return {**{k: report[k] for k in ("accuracy", "locked", "leakage", "audit") if k in report},
                "summary": summary(report)}


@register_job
@dataclasses.dataclass(frozen=True, kw_only=True)
class MtkPredictJob(Job):
    """Per-task predictions for a corpus of images, with the key file's keys applied if given."""

    name = "mtk.predict"
    LOCAL_PATHS = ("model", "keys", "output")
    model: str = setting(positional=True, help="model directory written by `raypriv mtk train`")
    source: str = setting(positional=True, help="corpus spec of the images to label")
    keys: str | None = setting(None, help="key file: its keys are added to every image (without: un-keyed)")
    output: str = setting(short="-o", help="CSV file: id, then one column per task")
    split: str = setting("test", help="split of the source")

    def execute(self, reporter) -> Outcome:
        from raypriv.data import load_corpus
        from raypriv.mtk.predict import predict_corpus, write_predictions
        from raypriv.mtk.train import load_model

        model = load_model(self.model)
        keys = model.load_keys(self.keys) if self.keys else None
        corpus = load_corpus(self.source, split=self.split, validate=False)
        preds = predict_corpus(model, corpus, keys, resources=self.cluster())
        path = write_predictions(self.output, preds, model)
        reporter(f"wrote predictions for {len(preds['id']):,} images ({'with' if keys else 'without'} keys) to {path}")
        return Outcome(artifacts={"predictions": path}, metrics={"rows": len(preds["id"])})


def _check_key_file(found, path: str, *, spec, secured: tuple[str, ...]) -> None:
    """An existing key file is used only for the keys the settings ask for: their form (the patch
    size counts for patches only) and, when named, the secured tasks."""
    from raypriv.mtk.keys import KeyFileError

    fields = ("form", "amplitude") + (("patch_size",) if spec.form == "patch" else ())
    differ = [f for f in fields if getattr(found.spec, f) != getattr(spec, f)]
    if secured and tuple(found.tasks) != tuple(secured):
        differ.append(f"secured tasks {list(found.tasks)} (settings: {list(secured)})")
    if differ:
        raise KeyFileError(f"{path}: its keys differ from what the settings ask for ("
                           + ", ".join(d if " " in d else f"{d} {getattr(found.spec, d)!r}, settings "
                                       f"{getattr(spec, d)!r}" for d in differ)
                           + "); use a key file made for them, or another path (a sweep over key settings or "
                             "secured tasks: leave keys unset, and each trial gets its own)")


@register_job
@dataclasses.dataclass(frozen=True, kw_only=True)
class MtkPipelineJob(Job):
    """Keys (if the key file does not exist yet), training and evaluation: ``keys`` (mode 0600,
    outside the model; by default ``OUTPUT.keys``, beside the pipeline directory), ``output/model``
    and ``output/eval``. A re-run reuses finished stages. An existing key file is used only if
    its keys have the form the ``key`` settings ask for (a sweep over ``key.*`` gets a key file
    per trial by leaving ``keys`` unset)."""

    name = "mtk.pipeline"
    LOCAL_PATHS = ("output", "keys")
    STORAGE_PATHS = ("checkpoints",)
    SWEEP_METRIC = "eval.summary.unsecured_accuracy:max"
    SWEEP_FRONTIER = ("eval.summary.leakage:min", "eval.summary.unsecured_accuracy:max")
    source: str = setting(positional=True, help=SOURCE_HELP)
    keys: str | None = setting(None, help="key file: generated when absent, else used if its keys have the `key` "
                                          "form (default: OUTPUT.keys, beside the pipeline directory)")
    output: str = setting(short="-o", help="pipeline directory (model/, eval/)")
    secured: tuple[str, ...] = setting((), help="tasks to secure (default: the corpus's main label)")
    key: KeySpec = setting(default_factory=KeySpec, help="the keys' form (when the key file is generated)")
    mtk: MtkConfig = setting(default_factory=MtkConfig, help="MTK settings")
    audit: AuditConfig | None = setting(default_factory=AuditConfig, help="key-recovery audit (null: skip it)")
    attacker: str | None = setting(None, help="corpus spec of the audit attacker's labeled images")
    test_split: str = setting("test", help="split of the source to evaluate on")
    checkpoints: str | None = setting(None, help="where Ray Train keeps the training run's checkpoints: a directory "
                                                 "or a pyarrow URI (default: output/model.checkpoints)")

    def key_file(self) -> str:
        import os

        return self.keys or os.path.abspath(self.output).rstrip("/") + ".keys"

    def execute(self, reporter) -> Outcome:
        import os

        from raypriv.mtk.keys import KeyFileError, KeySet

        keys = self.key_file()
        if not os.path.exists(keys):
            from raypriv.data import load_corpus

            # bad data and settings training would refuse fail here, before a key file is written
            try:
                MtkKeysJob(source=self.source, output=keys, secured=self.secured, key=self.key).write_keys(
                    load_corpus(self.source), reporter, tasks=self.mtk.tasks)
            except KeyFileError:
                if not os.path.exists(keys):        # not another run's key file written meanwhile: a real error
                    raise
        _check_key_file(KeySet.load(keys), keys, spec=self.key, secured=self.secured)
        common = {"resources": self.resources}
        model, report = (os.path.join(self.output, s) for s in ("model", "eval"))
        return run_stages([
            ("model", MtkTrainJob(source=self.source, keys=keys, output=model, mtk=self.mtk,
                                  checkpoints=self.checkpoints, **common)),
            ("eval", MtkEvaluateJob(model=model, source=self.source, keys=keys, output=report,
                                    split=self.test_split, audit=self.audit, attacker=self.attacker, **common)),
        ], reporter)
