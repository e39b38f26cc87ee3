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
from raypriv.jobs.registry import register_job
from raypriv.unlearnable.config import UnlearnableConfig

SOURCE_HELP = "corpus spec: digits, mnist5k, cifar10:PATH, imagefolder:PATH, parquet:PATH"


@register_job
@dataclasses.dataclass(frozen=True, kw_only=True)
class ProtectJob(Job):
    """Make a corpus unlearnable (error-minimizing noise).

    Writes ``output`` (Parquet shards + manifest.json); a re-run after an interruption resumes
    from the last finished round's checkpoint."""

    name = "protect"
    LOCAL_PATHS = ('checkpoint_dir',)
    source: str = setting(positional=True, help=SOURCE_HELP)
    output: str = setting(short="-o", help="output directory (local path or pyarrow filesystem URI)")
    split: str = setting("train", help="split of the source to protect")
    resize: int | None = setting(None, help="resize every image to N×N (otherwise mixed sizes are an error)")
    checkpoint_dir: str | None = setting(None, help="where per-round checkpoints go (default: OUTPUT.checkpoints)")
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
