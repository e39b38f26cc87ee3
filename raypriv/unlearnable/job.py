"""The unlearnable-examples job: ``raypriv protect`` and ``jobs/protect_unlearnable.py``.

>>> job = ProtectJob.from_dict({"source": "digits", "output": "/tmp/x",
...                             "unlearnable": {"mode": "classwise", "epsilon_255": 16}})
>>> job.unlearnable.budget_255, job.unlearnable.surrogate
(16, 'tiny_cnn')
"""
from __future__ import annotations

import dataclasses

from raypriv.configs import setting
from raypriv.jobs.base import Job, Outcome
from raypriv.jobs.registry import register_group, register_job
from raypriv.jobs.stages import Stage
from raypriv.unlearnable.config import UnlearnableConfig

SOURCE_HELP = "corpus spec: digits, mnist5k, cifar10:PATH, imagefolder:PATH, parquet:PATH"


@register_job
@dataclasses.dataclass(frozen=True, kw_only=True)
class ProtectJob(Stage):
    """Make a corpus unlearnable (error-minimizing noise).

    Writes ``output`` (Parquet shards + manifest.json); a re-run after an interruption resumes
    from the last finished round's checkpoint."""

    name = "protect"
    what = "protected corpus"
    STORAGE_PATHS = ('checkpoint_dir',)
    source: str = setting(positional=True, help=SOURCE_HELP)
    output: str = setting(short="-o", help="output directory (local path or pyarrow filesystem URI)")
    split: str = setting("train", help="split of the source to protect")
    resize: int | None = setting(None, help="resize every image to N×N (otherwise mixed sizes are an error)")
    checkpoint_dir: str | None = setting(None, help="where per-round checkpoints go, a path or a pyarrow URI as "
                                                    "private as the source (default: OUTPUT.checkpoints for a local "
                                                    "output, none for a URI)")
    keep_checkpoints: bool = setting(False, help="keep the per-round checkpoints after finishing")
    overwrite: bool = setting(False, help="replace an existing finished output")
    unlearnable: UnlearnableConfig = setting(default_factory=UnlearnableConfig, flatten=True,
                                             help="noise settings (a preset and overrides)")

    def execute(self, reporter) -> Outcome:
        from raypriv.data import load_corpus
        from raypriv.unlearnable.protection import protect
        from raypriv.unlearnable.report import round_table, run_metrics

        reporter(f"loading {self.source} ({self.split})")
        corpus = load_corpus(self.source, split=self.split, resize=self.resize)
        result = protect(corpus, output=self.output, config=self.unlearnable, resources=self.cluster(),
                         checkpoint_dir=self.checkpoint_dir, keep_checkpoints=self.keep_checkpoints,
                         overwrite=self.overwrite, progress=reporter)
        if result.manifest.get("history"):
            reporter(round_table(result.manifest["history"]))
        return Outcome(artifacts={"corpus": result.output, "manifest": f"{result.output}/manifest.json"},
                       metrics=run_metrics(result.manifest))

    def metrics_of(self, manifest: dict) -> dict:
        from raypriv.unlearnable.report import run_metrics

        return run_metrics(manifest)

    @classmethod
    def what_key(cls) -> str:
        return "corpus"


register_group("unlearnable", help="unlearnable examples: protect a corpus and check the protection")


@register_job
@dataclasses.dataclass(frozen=True, kw_only=True)
class UnlearnablePipelineJob(Job):
    """Protect a corpus and check the protection, each stage into output/<stage>.

    ``protected`` (the ``protect`` job on the source's train split; its manifest holds the
    release's visual cost, PSNR/SSIM against the originals) and ``eval`` (the registered
    ``evaluate`` job: victims trained on clean vs protected data, scored on ``test_split``). A
    finished stage is reused on a re-run. What ``raypriv sweep`` trades off by default: the
    strongest victim's accuracy on protected data (lower protects more) against the released
    images' mean SSIM (higher looks more like the original).

    >>> job = UnlearnablePipelineJob.from_dict({"source": "digits", "output": "/tmp/p",
    ...                                         "unlearnable": {"epsilon_255": 4}, "evaluate": {"victim": {"epochs": 2}}})
    >>> [key for key, _ in job.stages()], job.stages()[1][1].evaluate.victim.epochs
    (['protected', 'eval'], 2)
    """

    name = "unlearnable.pipeline"
    LOCAL_PATHS = ('output',)
    SWEEP_METRIC = "eval.max_protected_test_acc:min"
    SWEEP_FRONTIER = ("eval.max_protected_test_acc:min", "protected.visual_cost.ssim.mean:max")
    source: str = setting(positional=True, help=SOURCE_HELP + " (its train split is protected)")
    output: str = setting(short="-o", help="pipeline directory (protected/, eval/)")
    test_split: str = setting("test", help="split of the source the victims are scored on")
    unlearnable: UnlearnableConfig = setting(default_factory=UnlearnableConfig,
                                             help="noise settings (a preset and overrides)")
    evaluate: dict = setting(default_factory=dict, flag=False,
                             help="settings of the check (the `evaluate` job's: victim, defenses, partial)")

    def __post_init__(self):
        super().__post_init__()
        self.stages()          # the check's settings are validated when the job is built

    def stages(self) -> list[tuple[str, Stage]]:
        import os

        from raypriv.jobs.registry import get_job

        protected, report = os.path.join(self.output, "protected"), os.path.join(self.output, "eval")
        check = get_job("evaluate").from_dict({"clean": self.source, "protected": protected, "output": report,
                                               "test_split": self.test_split, "evaluate": self.evaluate,
                                               "resources": self.resources})
        return [("protected", ProtectJob(source=self.source, output=protected, unlearnable=self.unlearnable,
                                         resources=self.resources)),
                ("eval", check)]

    def execute(self, reporter) -> Outcome:
        from raypriv.jobs.stages import run_stages

        return run_stages(self.stages(), reporter)
