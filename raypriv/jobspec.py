"""Declarative job specs shared by the CLI and the ``jobs/`` entry points.

A spec says what to read, what to do and where to write; ``run()`` does it on the
connected Ray cluster. The same spec is built from command-line flags or from YAML.

>>> spec = ProtectJob.from_dict({"source": "digits", "output": "/tmp/x",
...                              "unlearnable": {"mode": "classwise", "epsilon_255": 16}})
>>> spec.unlearnable.budget_255, spec.resources.workers
(16, 1)
"""
from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:  # pragma: no cover
    import argparse

from raypriv.configs import reject_unknown
from raypriv.errors import ConfigError
from raypriv.dpvae.config import DPVAEConfig
from raypriv.dpvae.sample import DEFAULT_TEMPERATURE
from raypriv.classifier.config import DistillConfig, VictimConfig
from raypriv.runtime import ResourceSpec
from raypriv.synth.config import SynthConfig
from raypriv.synth.report import SynthEvalConfig
from raypriv.unlearnable.config import UnlearnableConfig


def _yaml_loader():
    """PyYAML's safe loader, but reading ``1e-3`` as a float (YAML 1.1 wants ``1.0e-3``,
    and ``lr: 1e-3`` would otherwise arrive as the string ``'1e-3'``)."""
    import re

    import yaml

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_implicit_resolver(
        "tag:yaml.org,2002:float",
        re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
                    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
                    |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
                    |[-+]?\.(?:inf|Inf|INF)
                    |\.(?:nan|NaN|NAN))$""", re.X),
        list("-+0123456789."))
    return Loader


def parse_yaml(text):
    """A YAML document or ``--set`` value (``1e-3`` is a float).

    >>> parse_yaml("3e-3"), parse_yaml("[encoder, decoder.2]"), parse_yaml("null")
    (0.003, ['encoder', 'decoder.2'], None)
    """
    import yaml

    return yaml.load(text, Loader=_yaml_loader())


def load_job_config(path: str, overrides: list[str] = ()) -> dict:
    """A YAML job config with ``key=value`` overrides applied (dotted keys reach nested settings;
    values are parsed as YAML: ``synth.iterations=100``, ``evaluate=null``)."""
    with open(path) as f:
        cfg = parse_yaml(f) or {}
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError("--set", f"expected KEY=VALUE, got {item!r}")
        node = cfg
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = parse_yaml(value)
    return cfg


def _check_job_keys(cls, d: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``d`` after checking that ``source`` and ``output`` are set and every key is a field of ``cls``."""
    d = dict(d)
    for key in ("source", "output"):
        if not d.get(key):
            raise ConfigError(key, "is required")
    reject_unknown(cls, d, prefix="", what="job setting")
    return d


def _sub(cls, field: str, d: dict | None):
    """``cls(**d)`` with unknown keys reported under ``field``."""
    d = dict(d or {})
    reject_unknown(cls, d, prefix=f"{field}.")
    return cls(**d)


def job_args_parser(description: str, *, example: str) -> "argparse.ArgumentParser":
    """The arguments every ``jobs/`` entry point takes: ``--config`` and repeated ``--set``."""
    import argparse

    p = argparse.ArgumentParser(description=description)
    p.add_argument("--config", required=True, help="YAML job config (see jobs/configs/)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help=f"override a config key, e.g. output=/tmp/x or {example}")
    p.add_argument("--verbose", action="store_true", help="show Ray's own logs and an error's whole traceback")
    return p


def run_job(job_cls, args, *, name: str, progress: Callable[[str], None] | None = None) -> int:
    """Build ``job_cls`` from ``args.config`` + ``args.set``, join (or start) Ray, run it and
    print where the results are. Returns the exit status: 2 on a raypriv error, 1 on any other,
    each printed as one line (:func:`raypriv.runtime.execute.run_entry_point`)."""
    from raypriv.runtime import init_ray
    from raypriv.runtime.execute import run_entry_point

    say = progress or (lambda m: print(m, flush=True))
    verbose = bool(getattr(args, "verbose", False))

    def run() -> int:
        job = job_cls.from_dict(load_job_config(args.config, args.set))
        init_ray(quiet=not verbose)  # inside `ray job submit` this joins the cluster that runs the job
        for line in job.describe(job.run(progress=say)):
            say(line)
        return 0

    return run_entry_point(run, name=name, verbose=verbose)


@dataclasses.dataclass(kw_only=True)
class ProtectJob:
    """Protect ``source`` (a corpus spec such as ``mnist5k`` or ``cifar10:/data``) into ``output``."""

    source: str
    output: str
    split: str = "train"
    resize: int | None = None
    checkpoint_dir: str | None = None
    keep_checkpoints: bool = False
    overwrite: bool = False
    unlearnable: UnlearnableConfig = dataclasses.field(default_factory=UnlearnableConfig)
    resources: ResourceSpec = dataclasses.field(default_factory=ResourceSpec)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ProtectJob":
        d = _check_job_keys(cls, d)
        d["unlearnable"] = UnlearnableConfig.from_dict(d.get("unlearnable") or {})
        d["resources"] = _sub(ResourceSpec, "resources", d.get("resources"))
        return cls(**d)

    @classmethod
    def from_yaml(cls, path: str) -> "ProtectJob":
        return cls.from_dict(load_job_config(path))

    def run(self, *, progress: Callable[[str], None] = print):
        from raypriv.data import load_corpus
        from raypriv.unlearnable import protect

        progress(f"loading {self.source} ({self.split})")
        corpus = load_corpus(self.source, split=self.split, resize=self.resize)
        return protect(corpus, output=self.output, config=self.unlearnable, resources=self.resources,
                       checkpoint_dir=self.checkpoint_dir, keep_checkpoints=self.keep_checkpoints,
                       overwrite=self.overwrite, progress=progress)

    @staticmethod
    def describe(result) -> list[str]:
        return [f"manifest: {result.output}/manifest.json"]


TEACHER_EPOCHS = 15  # a job's teacher recipe unless its config says otherwise


@dataclasses.dataclass(kw_only=True)
class SynthJob:
    """The whole synthetic-data pipeline on ``source``, each stage into ``output/<stage>``:
    ``teacher`` (Ray Train with the ``teacher`` recipe; or ``teacher_checkpoint``, a
    state_dict of ``teacher.model``), ``stats``, ``synth`` and, if ``evaluate`` is set,
    ``eval``. A finished stage is reused on a re-run and generation resumes its staged
    batches, so a failed job is resubmitted as is.

    >>> job = SynthJob.from_dict({"source": "digits", "output": "/tmp/s", "synth": {"images_per_class": 20},
    ...                           "evaluate": {"images_per_class": [10, 20]}})
    >>> job.synth.images_per_class, job.evaluate.images_per_class, job.teacher.epochs
    (20, (10, 20), 15)
    """

    source: str
    output: str
    test_split: str = "test"
    teacher_checkpoint: str | None = None
    teacher: VictimConfig = dataclasses.field(default_factory=lambda: VictimConfig(epochs=TEACHER_EPOCHS))
    synth: SynthConfig = dataclasses.field(default_factory=SynthConfig)
    evaluate: SynthEvalConfig | None = None
    resources: ResourceSpec = dataclasses.field(default_factory=ResourceSpec)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "SynthJob":
        d = _check_job_keys(cls, d)
        d["teacher"] = _sub(VictimConfig, "teacher", {"epochs": TEACHER_EPOCHS, **(d.get("teacher") or {})})
        d["synth"] = _sub(SynthConfig, "synth", d.get("synth"))
        if d.get("evaluate") is not None:
            ev = dict(d["evaluate"])
            victim = _sub(VictimConfig, "evaluate.victim", ev.pop("victim", None))
            distill = _sub(DistillConfig, "evaluate.distill", ev.pop("distill", None))
            d["evaluate"] = _sub(SynthEvalConfig, "evaluate", {**ev, "victim": victim, "distill": distill})
        d["resources"] = _sub(ResourceSpec, "resources", d.get("resources"))
        return cls(**d)

    def run(self, *, progress: Callable[[str], None] = print) -> dict[str, str]:
        """Run the stages that are not finished yet; return ``{stage: directory}``."""
        import os

        from raypriv import synth
        from raypriv.data import load_corpus

        out = {s: os.path.join(self.output, s) for s in ("teacher", "stats", "synth", "eval")}
        marker = {"teacher": "manifest.json", "stats": "manifest.json", "synth": "manifest.json", "eval": "report.json"}
        done = lambda s: os.path.exists(os.path.join(out[s], marker[s]))  # noqa: E731
        train, test = load_corpus(self.source), load_corpus(self.source, split=self.test_split)
        if done("teacher"):
            teacher = synth.load_teacher(out["teacher"])
            progress(f"reusing teacher {out['teacher']}")
        elif self.teacher_checkpoint:
            h, _, c = train.info.image_shape
            teacher = synth.import_teacher(self.teacher_checkpoint, model=self.teacher.model, in_channels=c,
                                           image_size=h, num_classes=train.info.num_classes, output=out["teacher"])
        else:
            teacher = synth.train_teacher(train, test, output=out["teacher"],
                                          config=self.teacher, resources=self.resources, progress=progress)
        if done("stats"):
            stats = synth.ClassBNStats.load(out["stats"])
            progress(f"reusing statistics {out['stats']}")
        else:
            stats = synth.compute_class_stats(train, teacher, resources=self.resources, progress=progress)
            stats.save(out["stats"])
        if done("synth"):
            progress(f"reusing synthetic corpus {out['synth']}")
        else:
            synth.generate(teacher, stats, output=out["synth"], config=self.synth, resources=self.resources,
                           progress=progress)
        if self.evaluate is None:
            out.pop("eval")
        elif done("eval"):
            progress(f"reusing evaluation {out['eval']}")
        else:
            report = synth.evaluate_synthetic(
                synthetic=load_corpus(f"parquet:{out['synth']}"), real_train=train, real_test=test,
                config=self.evaluate, resources=self.resources, out_dir=out["eval"], progress=progress,
                teacher=teacher)
            progress(synth.format_table(report))
        return out

    @staticmethod
    def describe(result: dict[str, str]) -> list[str]:
        return [f"{stage}: {path}" for stage, path in result.items()]



@dataclasses.dataclass(kw_only=True)
class DPVAEJob:
    """DP²-VAE on ``source``: ``output/model`` (training; a re-run continues an unfinished
    run from its ledger and last checkpoint), ``output/synth`` (``sample_images_per_class``
    per class; 0 skips) and, if ``evaluate`` is set (a victim recipe), ``output/eval``.

    >>> job = DPVAEJob.from_dict({"source": "mnist5k", "output": "/tmp/d",
    ...                           "train": {"epsilon": 1.0, "dataset_size": 4000}, "evaluate": {"epochs": 3}})
    >>> job.train.epsilon, job.train.method, job.evaluate.epochs
    (1.0, 'dp2', 3)
    """

    source: str
    output: str
    test_split: str = "test"
    public: str | None = None
    train: DPVAEConfig = dataclasses.field(default_factory=DPVAEConfig)
    sample_images_per_class: int = 400
    sample_temperature: float = DEFAULT_TEMPERATURE
    evaluate: VictimConfig | None = None
    max_failures: int = 0
    resources: ResourceSpec = dataclasses.field(default_factory=ResourceSpec)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "DPVAEJob":
        d = _check_job_keys(cls, d)
        from raypriv.dpvae.evaluate import VICTIM_DEFAULTS

        d["train"] = _sub(DPVAEConfig, "train", d.get("train"))
        if d.get("evaluate") is not None:
            d["evaluate"] = _sub(VictimConfig, "evaluate", {**VICTIM_DEFAULTS, **d["evaluate"]})
        d["resources"] = _sub(ResourceSpec, "resources", d.get("resources"))
        return cls(**d)

    def run(self, *, progress: Callable[[str], None] = print) -> dict[str, str]:
        import os

        from raypriv import dpvae
        from raypriv.data import load_corpus
        from raypriv.privacy.ledger import LEDGER_NAME

        out = {s: os.path.join(self.output, s) for s in ("model", "synth", "eval")}
        done = lambda s, f="manifest.json": os.path.exists(os.path.join(out[s], f))  # noqa: E731
        train = load_corpus(self.source)
        if dpvae.is_finished(out["model"]):
            progress(f"reusing trained model {out['model']}")
        else:
            resume = done("model", LEDGER_NAME)
            if resume:
                progress(f"resuming {out['model']} from its privacy ledger and last checkpoint")
            dpvae.train_dpvae(train, config=self.train, output=out["model"], resources=self.resources,
                              public=load_corpus(self.public) if self.public else None, resume=resume,
                              max_failures=self.max_failures, progress=progress)
        if not self.sample_images_per_class:
            return {"model": out["model"]}
        if done("synth"):
            progress(f"reusing samples {out['synth']}")
        else:
            dpvae.sample_dpvae(out["model"], output=out["synth"], images_per_class=self.sample_images_per_class,
                               temperature=self.sample_temperature, seed=self.train.seed, resources=self.resources,
                               overwrite=True, progress=progress)
        if self.evaluate is None:
            out.pop("eval")
        elif not done("eval", "report.json"):
            dpvae.evaluate_dpvae(synthetic=load_corpus(f"parquet:{out['synth']}"), real_train=train,
                                 real_test=load_corpus(self.source, split=self.test_split), victim=self.evaluate,
                                 resources=self.resources, out_dir=out["eval"], progress=progress)
        return out

    @staticmethod
    def describe(result: dict[str, str]) -> list[str]:
        return [f"{stage}: {path}" for stage, path in result.items()]
