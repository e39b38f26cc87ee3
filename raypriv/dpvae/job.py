"""The DP²-VAE jobs: one per stage (``raypriv dpvae train|sample|evaluate``) and the whole
pipeline (``raypriv dpvae pipeline``, ``jobs/dpvae_train.py``).

>>> job = DPVAEPipelineJob.from_dict({"source": "mnist5k", "output": "/tmp/d",
...                                   "train": {"epsilon": 1.0, "dataset_size": 4000}, "evaluate": {"epochs": 3}})
>>> job.train.epsilon, job.train.method, job.evaluate.epochs, job.evaluate.model
(1.0, 'dp2', 3, 'plain_cnn')
"""
from __future__ import annotations

import dataclasses
import os
from typing import Any

from raypriv.classifier.config import VictimConfig
from raypriv.configs import setting
from raypriv.dpvae.config import DEFAULT_TEMPERATURE, DPVAEConfig, default_victim
from raypriv.jobs.base import Job, Outcome
from raypriv.jobs.registry import register_group, register_job
from raypriv.jobs.stages import ReportStage, Stage, run_stages

register_group("dpvae", help="differentially private (pre-trained) VAEs: train, sample, evaluate")


def privacy_of(manifest: dict) -> dict[str, Any] | None:
    """The privacy a trained model spent, as a Result carries it (None for a non-private run)."""
    p = manifest.get("privacy") or {}
    if not p.get("private"):
        return None
    return {"epsilon": p["epsilon_spent"], "delta": p["delta"], "accountant": p["accountant"],
            "epsilon_target": p.get("epsilon_target"), "stages": p.get("stages", [])}


def planned_privacy(source: str, config: DPVAEConfig):
    """The mechanisms a training with ``config`` applies to ``source``'s records (σ solved from
    the target ε, q and the steps from the declared dataset size), or None when none are private."""
    from raypriv.dpvae.train import plan_stages
    from raypriv.privacy.accounting import Mechanism, PrivacyPlan

    if not config.private_stage_names:
        return None
    rows = config.dataset_size or 1          # a private plan depends on the declared size only
    plans = [p for p in plan_stages(config, train_rows=rows, public_rows=rows) if p.private]
    return PrivacyPlan(mechanisms=tuple(Mechanism(sigma=p.sigma, sample_rate=p.sample_rate, steps=p.steps)
                                        for p in plans),
                       delta=config.delta, accountant=config.accountant, source=source)


@register_job
@dataclasses.dataclass(frozen=True, kw_only=True)
class TrainJob(Stage):
    """Train a DP²-VAE (or the DP-SGD / non-private baseline) with Ray Train."""

    name = "dpvae.train"
    LOCAL_PATHS = ('output',)
    STORAGE_PATHS = ('checkpoints',)
    what = "trained model"
    source: str = setting(positional=True, help="corpus spec of the private training data")
    output: str = setting(short="-o", help="run directory (its release/ holds what may be published)")
    public: str | None = setting(None, help="corpus spec of the public pre-training data (with --pretrain-on public)")
    resume: bool = setting(False, help="continue the run in --output (its ledger keeps counting)")
    max_failures: int = setting(0, help="worker-group restarts Ray Train may make")
    checkpoints: str | None = setting(None, help="where Ray Train keeps this run's checkpoints: a directory or a "
                                      "pyarrow URI (s3://bucket/run; default: inside --output, which holds the ledger)")
    train: DPVAEConfig = setting(default_factory=DPVAEConfig, flatten=True, help="training settings")

    def planned_privacy(self):
        return planned_privacy(self.source, self.train)

    def finished(self) -> bool:
        from raypriv.dpvae.train import is_finished

        return is_finished(self.output)

    def execute(self, reporter) -> Outcome:
        from raypriv.data import load_corpus
        from raypriv.dpvae.train import train_dpvae

        train_dpvae(load_corpus(self.source), config=self.train, output=self.output, resources=self.cluster(),
                    public=load_corpus(self.public) if self.public else None, resume=self.resume,
                    max_failures=self.max_failures, checkpoints=self.checkpoints, progress=reporter)
        return self.collect()

    def collect(self) -> Outcome:
        from raypriv.dpvae.train import model_dir
        from raypriv.manifest import read_manifest

        path = model_dir(self.output)
        manifest = read_manifest(path)
        privacy = privacy_of(manifest)
        return Outcome(artifacts={"model": path}, privacy=privacy,
                       metrics={"epsilon_spent": privacy["epsilon"] if privacy else None})


@register_job
@dataclasses.dataclass(frozen=True, kw_only=True)
class SampleJob(Stage):
    """Sample a labeled synthetic corpus from a trained conditional VAE."""

    name = "dpvae.sample"
    LOCAL_PATHS = ('model',)
    what = "samples"
    model: str = setting(help="directory written by `raypriv dpvae train` (or its release/)")
    output: str = setting(short="-o", help="synthetic corpus directory")
    images_per_class: int = setting(400, help="images sampled per class")
    seed: int = setting(0, help="seeds the latent draws")
    temperature: float = setting(DEFAULT_TEMPERATURE, help="scale of the latent draws z ~ N(0, t²I); below 1: "
                                                           "more typical images")
    overwrite: bool = setting(False, help="replace an existing output")

    def execute(self, reporter) -> Outcome:
        from raypriv.dpvae.sample import sample_dpvae

        sample_dpvae(self.model, output=self.output, images_per_class=self.images_per_class, seed=self.seed,
                     temperature=self.temperature, resources=self.cluster(), overwrite=self.overwrite,
                     progress=reporter)
        return self.collect()


@register_job
@dataclasses.dataclass(frozen=True, kw_only=True)
class DPVAEEvalJob(ReportStage):
    """Downstream accuracy and classifier-feature Fréchet distance of a sample."""

    name = "dpvae.evaluate"
    LOCAL_PATHS = ('output',)
    what = "evaluation"
    files = {"samples": "samples.png"}
    synthetic: str = setting(help="directory written by `raypriv dpvae sample`")
    real: str = setting(help="corpus spec of the real data (train and test splits)")
    output: str = setting(short="-o", help="report directory")
    test_split: str = setting("test", help="split of the real data that is the test set")
    victim: VictimConfig = setting(default_factory=default_victim, flatten=True, rename={"model": "victim"},
                                   help="classifier recipe (default plain_cnn: no BatchNorm, see the docs)")

    def execute(self, reporter) -> Outcome:
        from raypriv.data import load_corpus
        from raypriv.dpvae.report import evaluate_dpvae

        report = evaluate_dpvae(
            synthetic=load_corpus(f"parquet:{self.synthetic}"), real_train=load_corpus(self.real),
            real_test=load_corpus(self.real, split=self.test_split), victim=self.victim, resources=self.cluster(),
            out_dir=self.output, progress=reporter)
        reporter(f"downstream accuracy {report['downstream_test_acc']:.2%} (real data "
                 f"{report['real_data_test_acc']:.2%}); Fréchet distance {report['frechet_distance']:.3f} "
                 f"(classifier features, not Inception-FID)")
        reporter(f"this report is not covered by ε: {report['privacy']['note']}")
        return self.collect()

    def metrics_of_report(self, report: dict[str, Any]) -> dict[str, Any]:
        keys = ("downstream_test_acc", "real_data_test_acc", "frechet_distance", "label_agreement")
        return {k: report.get(k) for k in keys}


@register_job
@dataclasses.dataclass(frozen=True, kw_only=True)
class DPVAEPipelineJob(Job):
    """DP²-VAE training, sampling and evaluation, each into output/<stage>.

    ``output/model`` (a re-run continues an unfinished run from its ledger and last
    checkpoint), ``output/synth`` (``sample_images_per_class`` per class; 0 skips) and, if
    ``evaluate`` is set (a victim recipe), ``output/eval``."""

    name = "dpvae.pipeline"
    LOCAL_PATHS = ('output',)
    STORAGE_PATHS = ('checkpoints',)
    RERUN_WITHIN_PLAN = True      # a re-run continues an unfinished training from its ledger
    SWEEP_METRIC = "eval.downstream_test_acc:max"
    SWEEP_FRONTIER = ("model.epsilon_spent:min", "eval.downstream_test_acc:max")
    source: str = setting(positional=True, help="corpus spec of the private training data")
    output: str = setting(short="-o", help="pipeline directory (one sub-directory per stage)")
    test_split: str = setting("test", help="split of the source that is the test set")
    public: str | None = setting(None, help="corpus spec of the public pre-training data")
    train: DPVAEConfig = setting(default_factory=DPVAEConfig, help="training settings")
    sample_images_per_class: int = setting(400, help="images sampled per class (0: no sampling)")
    sample_temperature: float = setting(DEFAULT_TEMPERATURE, help="scale of the latent draws")
    evaluate: VictimConfig | None = setting(None, template=default_victim,
                                            help="evaluation classifier recipe (none: no evaluation)")
    max_failures: int = setting(0, help="worker-group restarts Ray Train may make")
    checkpoints: str | None = setting(None, help="where Ray Train keeps the training run's checkpoints: a directory "
                                      "or a pyarrow URI (default: inside output/model, which holds the ledger)")

    def planned_privacy(self):
        return planned_privacy(self.source, self.train)

    def stages(self) -> list[tuple[str, Stage]]:
        from raypriv.privacy.ledger import LEDGER_NAME

        out = {s: os.path.join(self.output, s) for s in ("model", "synth", "eval")}
        resume = os.path.exists(os.path.join(out["model"], LEDGER_NAME))
        common = {"resources": self.resources}
        stages: list[tuple[str, Stage]] = [
            ("model", TrainJob(source=self.source, output=out["model"], public=self.public, resume=resume,
                               max_failures=self.max_failures, checkpoints=self.checkpoints, train=self.train,
                               **common))]
        if self.sample_images_per_class:
            stages.append(("synth", SampleJob(model=out["model"], output=out["synth"],
                                              images_per_class=self.sample_images_per_class,
                                              temperature=self.sample_temperature, seed=self.train.seed,
                                              overwrite=True, **common)))
            if self.evaluate is not None:
                stages.append(("eval", DPVAEEvalJob(synthetic=out["synth"], real=self.source, output=out["eval"],
                                                    test_split=self.test_split, victim=self.evaluate, **common)))
        return stages

    def execute(self, reporter) -> Outcome:
        stages = self.stages()
        train = stages[0][1]
        if train.resume and not train.finished():
            reporter(f"resuming {train.output} from its privacy ledger and last checkpoint")
        return run_stages(stages, reporter)
