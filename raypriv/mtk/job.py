"""The MTK jobs: ``raypriv mtk keys|train`` (and their ``jobs/`` entry point).

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
from raypriv.jobs.base import Job, Outcome
from raypriv.jobs.registry import register_group, register_job
from raypriv.mtk.config import MtkConfig
from raypriv.mtk.keys import KeySpec

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
        from raypriv.mtk.config import task_layout
        from raypriv.mtk.keys import KeySet

        corpus = load_corpus(self.source, validate=False)
        layout = task_layout(corpus.info, secured=self.secured)
        keys = KeySet.generate(layout.secured, image_shape=corpus.info.image_shape, spec=self.key)
        path = keys.save(self.output, overwrite=self.overwrite)
        reporter(f"wrote {len(keys.tasks)} {keys.spec.form} key(s) (amplitude {keys.spec.amplitude}) for "
                 f"{', '.join(keys.tasks)} to {path} (mode 0600)")
        return Outcome(artifacts={"keys": path}, metrics={"secured_tasks": len(keys.tasks)})


@register_job
@dataclasses.dataclass(frozen=True, kw_only=True)
class MtkTrainJob(Job):
    """Train a multi-task model whose secured tasks answer only with their key (Ray Train)."""

    name = "mtk.train"
    LOCAL_PATHS = ("output", "keys")
    source: str = setting(positional=True, help=SOURCE_HELP)
    keys: str = setting(help="key file written by `raypriv mtk keys`")
    output: str = setting(short="-o", help="model directory")
    split: str = setting("train", help="split of the source to train on")
    overwrite: bool = setting(False, help="replace a finished model")
    mtk: MtkConfig = setting(default_factory=MtkConfig, flatten=True, help="MTK settings")

    def execute(self, reporter) -> Outcome:
        from raypriv.data import load_corpus
        from raypriv.mtk.keys import KeySet
        from raypriv.mtk.train import train_mtk

        keys = KeySet.load(self.keys)
        model = train_mtk(load_corpus(self.source, split=self.split), keys, config=self.mtk, output=self.output,
                          resources=self.cluster(), overwrite=self.overwrite, progress=reporter)
        last = model.manifest["history"][-1]
        return Outcome(artifacts={"model": model.path, "manifest": f"{model.path}/manifest.json"},
                       metrics={"loss": last["loss"], "train_acc": last["acc"]})
