"""The synthetic-data jobs: one per stage (``raypriv synth teacher|stats|generate|evaluate``)
and the whole pipeline (``raypriv synth pipeline``, ``jobs/synth_bn_stats.py``).

Each stage writes one directory whose ``manifest.json`` is written last; a stage whose
directory is finished is reused (:func:`raypriv.manifest.is_finished`), so a failed pipeline
is resubmitted as is.

>>> job = SynthPipelineJob.from_dict({"source": "digits", "output": "/tmp/s", "synth": {"images_per_class": 20},
...                                   "evaluate": {"images_per_class": [10, 20]}})
>>> job.synth.images_per_class, job.evaluate.images_per_class, job.teacher.epochs
(20, (10, 20), 15)
"""
from __future__ import annotations

import dataclasses
import os
from typing import Any

from raypriv.classifier.config import VictimConfig
from raypriv.configs import setting
from raypriv.jobs.base import Job, Outcome
from raypriv.jobs.stages import ReportStage, Stage, run_stages
from raypriv.jobs.registry import register_group, register_job
from raypriv.synth.config import SynthConfig, SynthEvalConfig

#: A teacher's recipe unless its settings say otherwise (shorter than the evaluation victim's).
TEACHER_EPOCHS = 15
REAL_HELP = "corpus spec of the private training data (its test split is the test set)"

register_group("synth", help="synthetic data from class-wise BatchNorm statistics")


def _teacher_recipe() -> VictimConfig:
    return VictimConfig(epochs=TEACHER_EPOCHS)


@register_job
@dataclasses.dataclass(frozen=True, kw_only=True)
class TeacherJob(Stage):
    """Train a BatchNorm teacher on the private corpus (Ray Train), or import one."""

    name = "synth.teacher"
    LOCAL_PATHS = ('output',)
    what = "teacher"
    source: str = setting(positional=True, help=REAL_HELP)
    output: str = setting(short="-o", help="teacher directory")
    test_split: str = setting("test", help="split the teacher is scored on")
    import_checkpoint: str | None = setting(None, metavar="STATE_DICT", help="wrap this torch state_dict of "
                                            "--model (for SOURCE's image shape and classes) instead of training")
    overwrite: bool = setting(False, help="replace a finished teacher")
    teacher: VictimConfig = setting(default_factory=_teacher_recipe, flatten=True,
                                    help="the teacher's training recipe (a registered model with BatchNorm)")

    def execute(self, reporter) -> Outcome:
        from raypriv.data import load_corpus
        from raypriv.synth.teacher import import_teacher, train_teacher

        train = load_corpus(self.source)
        if self.import_checkpoint:
            h, _, c = train.info.image_shape
            t = import_teacher(self.import_checkpoint, model=self.teacher.model, in_channels=c, image_size=h,
                               num_classes=train.info.num_classes, output=self.output, overwrite=self.overwrite)
            reporter(f"imported {self.import_checkpoint} as teacher {t.path}")
        else:
            train_teacher(train, load_corpus(self.source, split=self.test_split), output=self.output,
                          config=self.teacher, resources=self.cluster(), overwrite=self.overwrite, progress=reporter)
        return self.collect()

    def metrics_of(self, manifest: dict) -> dict[str, Any]:
        return {"test_acc": manifest.get("test_acc"), "train_acc": manifest.get("train_acc")}


@register_job
@dataclasses.dataclass(frozen=True, kw_only=True)
class StatsJob(Stage):
    """Record class-wise BN statistics of the teacher over the private corpus."""

    name = "synth.stats"
    LOCAL_PATHS = ('output', 'teacher')
    what = "statistics"
    source: str = setting(positional=True, help=REAL_HELP)
    teacher: str = setting(help="directory written by `raypriv synth teacher`")
    output: str = setting(short="-o", help="statistics directory")
    split: str = setting("train", help="split the statistics are taken over")

    def execute(self, reporter) -> Outcome:
        from raypriv.data import load_corpus
        from raypriv.synth.stats import compute_class_stats
        from raypriv.synth.teacher import load_teacher

        stats = compute_class_stats(load_corpus(self.source, split=self.split), load_teacher(self.teacher),
                                    resources=self.cluster(), progress=reporter)
        reporter(f"wrote statistics to {stats.save(self.output)}")
        return self.collect()


@register_job
@dataclasses.dataclass(frozen=True, kw_only=True)
class GenerateJob(Stage):
    """Optimize noise into a labeled synthetic corpus."""

    name = "synth.generate"
    LOCAL_PATHS = ('output', 'teacher', 'stats')
    what = "synthetic corpus"
    teacher: str = setting(help="directory written by `raypriv synth teacher`")
    stats: str = setting(help="directory written by `raypriv synth stats`")
    output: str = setting(short="-o", help="synthetic corpus directory")
    overwrite: bool = setting(False, help="replace a finished output and discard staged batches")
    synth: SynthConfig = setting(default_factory=SynthConfig, flatten=True, help="generation settings")

    def execute(self, reporter) -> Outcome:
        from raypriv.synth.generation import generate
        from raypriv.synth.stats import ClassBNStats
        from raypriv.synth.teacher import load_teacher

        generate(load_teacher(self.teacher), ClassBNStats.load(self.stats), output=self.output, config=self.synth,
                 resources=self.cluster(), overwrite=self.overwrite, progress=reporter)
        return self.collect()

    @classmethod
    def what_key(cls) -> str:
        return "synth"


@register_job
@dataclasses.dataclass(frozen=True, kw_only=True)
class SynthEvalJob(ReportStage):
    """Utility, nearest-real similarity and membership inference of a synthetic set."""

    name = "synth.evaluate"
    LOCAL_PATHS = ('output', 'teacher')
    what = "evaluation"
    files = {"nearest": "nearest.png", "samples": "samples.png"}
    synthetic: str = setting(help="directory written by `raypriv synth generate`")
    real: str = setting(help="corpus spec of the real data (train and test splits)")
    output: str = setting(short="-o", help="report directory")
    test_split: str = setting("test", help="split of the real data that is the test set")
    teacher: str | None = setting(None, help="teacher directory (needed with --labels teacher)")
    evaluate: SynthEvalConfig = setting(default_factory=SynthEvalConfig, flatten=True, help="what to measure")

    def execute(self, reporter) -> Outcome:
        from raypriv.data import load_corpus
        from raypriv.synth.report import evaluate_synthetic, format_table
        from raypriv.synth.teacher import load_teacher

        report = evaluate_synthetic(
            synthetic=load_corpus(f"parquet:{self.synthetic}"), real_train=load_corpus(self.real),
            real_test=load_corpus(self.real, split=self.test_split), config=self.evaluate, resources=self.cluster(),
            out_dir=self.output, progress=reporter, teacher=load_teacher(self.teacher) if self.teacher else None)
        reporter(format_table(report))
        return self.collect()

    def metrics_of_report(self, report: dict[str, Any]) -> dict[str, Any]:
        """Per training set test accuracy, nearest-real SSIM and membership-inference AUC; under
        ``summary`` the headline figures by fixed names: the accuracy of a victim trained on the
        largest synthetic set evaluated, the median nearest-real SSIM, and the loss-threshold
        attack's AUC against that victim, folded at 0.5 (0.5: it cannot tell members; an attack
        that ranks members below non-members tells them as well, so 0.3 counts as 0.7)."""
        utility = {("real" if u["train_set"] == "real" else f"synthetic_{u['images_per_class']}"): u["test_acc"]
                   for u in report["utility"]}
        near = report.get("nearest_real") or {}
        mia = {k: v.get("auc") for k, v in (report.get("membership_inference") or {}).items()}
        synthetic = [u for u in report["utility"] if u["train_set"] == "synthetic"]
        auc = mia.get("synthetic_trained")
        summary = {"synthetic_test_acc": synthetic[-1]["test_acc"] if synthetic else None,
                   "nearest_ssim_median": (near.get("ssim") or {}).get("median"),
                   "mia_auc": None if auc is None else max(auc, 1 - auc)}
        return {"test_acc": utility, "nearest_ssim_median": summary["nearest_ssim_median"], "mia_auc": mia,
                "summary": summary}


@register_job
@dataclasses.dataclass(frozen=True, kw_only=True)
class SynthPipelineJob(Job):
    """The whole synthetic-data pipeline, each stage into output/<stage>.

    ``teacher`` (Ray Train with the ``teacher`` recipe; or ``teacher_checkpoint``, a state_dict
    of ``teacher.model``), ``stats``, ``synth`` and, if ``evaluate`` is set, ``eval``. A finished
    stage is reused on a re-run and generation resumes its staged batches."""

    name = "synth.pipeline"
    LOCAL_PATHS = ('output',)
    SWEEP_METRIC = "eval.summary.synthetic_test_acc:max"
    SWEEP_FRONTIER = ("eval.summary.mia_auc:min", "eval.summary.synthetic_test_acc:max")
    source: str = setting(positional=True, help=REAL_HELP)
    output: str = setting(short="-o", help="pipeline directory (one sub-directory per stage)")
    test_split: str = setting("test", help="split of the source that is the test set")
    teacher_checkpoint: str | None = setting(None, help="import this state_dict of teacher.model instead of training")
    teacher: VictimConfig = setting(default_factory=_teacher_recipe, help="the teacher's training recipe")
    synth: SynthConfig = setting(default_factory=SynthConfig, help="generation settings")
    evaluate: SynthEvalConfig | None = setting(None, template=SynthEvalConfig,
                                               help="evaluation settings (none: no evaluation)")

    def stages(self) -> list[tuple[str, Stage]]:
        out = {s: os.path.join(self.output, s) for s in ("teacher", "stats", "synth", "eval")}
        common = {"resources": self.resources}
        stages: list[tuple[str, Stage]] = [
            ("teacher", TeacherJob(source=self.source, output=out["teacher"], test_split=self.test_split,
                                   import_checkpoint=self.teacher_checkpoint, teacher=self.teacher, **common)),
            ("stats", StatsJob(source=self.source, teacher=out["teacher"], output=out["stats"], **common)),
            ("synth", GenerateJob(teacher=out["teacher"], stats=out["stats"], output=out["synth"], synth=self.synth,
                                  **common))]
        if self.evaluate is not None:
            stages.append(("eval", SynthEvalJob(synthetic=out["synth"], real=self.source, output=out["eval"],
                                                test_split=self.test_split, evaluate=self.evaluate,
                                                teacher=out["teacher"] if self.evaluate.labels == "teacher" else None,
                                                **common)))
        return stages

    def execute(self, reporter) -> Outcome:
        return run_stages(self.stages(), reporter)
