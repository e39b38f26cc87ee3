"""The Job/Result contract: one settings path (YAML, ``--set``, CLI flags), flags generated from
the configs, and what a run returns."""
import argparse
import dataclasses
import functools
import os
import typing

import pytest

from raypriv.configs import resolved_type
from raypriv.errors import ConfigError
from raypriv.jobs import Job, Reporter, get_job, job_names
from raypriv.jobs.flags import job_flags

JOBS = job_names()
REQUIRED = {"source": "digits", "output": "/tmp/x", "clean": "digits", "protected": "/tmp/p", "teacher": "/tmp/t",
            "stats": "/tmp/s", "synthetic": "/tmp/syn", "real": "digits", "model": "/tmp/m", "keys": "/tmp/k",
            "job": "dpvae.pipeline"}


def test_every_technique_registers_its_jobs():
    assert {"protect", "evaluate", "synth.teacher", "synth.stats", "synth.generate", "synth.evaluate",
            "synth.pipeline", "dpvae.train", "dpvae.sample", "dpvae.evaluate", "dpvae.pipeline"} <= set(JOBS)
    with pytest.raises(ConfigError, match="unknown job 'protects'"):
        get_job("protects")


@pytest.mark.parametrize("name", JOBS)
def test_every_job_gets_flags_with_help_and_no_two_settings_share_one(name):
    cls = get_job(name)
    flags = job_flags(cls)          # raises on a shared flag
    assert flags and all(f.kwargs.get("help") for f in flags), [f.option for f in flags if not f.kwargs.get("help")]
    assert cls.summary() and issubclass(cls, Job) and dataclasses.is_dataclass(cls)


@functools.lru_cache(maxsize=1)
def _parser():
    from raypriv.cli import get_args_parser

    return get_args_parser()


def _value(flag, cls):
    """A command-line value for ``flag`` other than its default, and the setting it should give."""
    owner, name = cls, flag.path[-1]
    for part in flag.path[:-1]:
        owner = resolved_type(owner, part)[0]
    if not dataclasses.is_dataclass(owner) or name not in {f.name for f in dataclasses.fields(owner)}:
        return None                                                    # a from_settings key (--preset)
    tp, _ = resolved_type(owner, name)
    choices = flag.kwargs.get("choices")
    if choices:
        return choices[-1], choices[-1]
    if typing.get_origin(tp) is tuple:
        item = typing.get_args(tp)[0]
        sample = {int: ("10", (10,)), float: ("0.5", (0.5,)), str: ("none", ("none",))}[item]
        return sample
    if tp is int:
        return "3", 3
    if tp is float:
        return "0.004", 0.004
    return "val", "val"


REFUSED: list = []
CASES = [(name, flag) for name in JOBS for flag in job_flags(get_job(name))
         if not flag.positional and flag.path[-1] not in REQUIRED and not flag.kwargs.get("action")]


@pytest.mark.parametrize("name,flag", CASES, ids=[f"{n}:{f.option}" for n, f in CASES])
def test_every_flag_reaches_its_setting(name, flag):
    """A flag that does not arrive where its help says would be caught here, for every job."""
    from raypriv.cli import job_from_args

    cls = get_job(name)
    pair = _value(flag, cls)
    if pair is None:
        pytest.skip("a key of a custom builder")
    text, expected = pair
    argv = [*name.split("."), *_required_argv(cls), flag.option, text]
    try:
        job = job_from_args(_parser().parse_args(argv))
    except ConfigError as e:          # a value this setting's own checks refuse still reached it
        assert e.field.split(".")[-1] == flag.path[-1] or flag.path[-1] in str(e), e
        REFUSED.append((name, flag.option, str(e)))
        return
    value = job
    for part in flag.path:
        value = getattr(value, part)
    assert value == expected


@pytest.mark.parametrize("name", JOBS)
def test_boolean_flags_turn_settings_on_and_off(name):
    from raypriv.cli import job_from_args

    cls = get_job(name)
    for flag in job_flags(cls):
        if flag.kwargs.get("action") is not argparse.BooleanOptionalAction:
            continue
        no = "--no-" + flag.option[2:]
        for option, expected in ((flag.option, True), (no, False)):
            try:
                job = job_from_args(_parser().parse_args([*name.split("."), *_required_argv(cls), option]))
            except ConfigError:
                continue
            value = job
            for part in flag.path:
                value = getattr(value, part)
            assert value is expected, (option, value)


def _required_argv(cls) -> list[str]:
    argv = []
    for flag in job_flags(cls):
        key = flag.path[-1]
        if len(flag.path) == 1 and key in REQUIRED:
            argv += [REQUIRED[key]] if flag.positional else [flag.option, REQUIRED[key]]
    return argv


def test_yaml_then_flags_then_set(tmp_path):
    """The CLI takes the jobs/ YAML files too: the file first, then the flags, then --set."""
    from raypriv.cli import get_args_parser, job_from_args

    cfg = tmp_path / "job.yaml"
    cfg.write_text("source: mnist5k\noutput: /tmp/y\ntrain:\n  epsilon: 3.0\n  lr: 0.05\n  dataset_size: 4000\n")
    parse = get_args_parser().parse_args
    job = job_from_args(parse(["dpvae", "pipeline", "digits", "--config", str(cfg), "--train-epsilon", "5"]))
    assert (job.source, job.output, job.train.epsilon, job.train.lr) == ("digits", "/tmp/y", 5.0, 0.05)
    job = job_from_args(parse(["dpvae", "pipeline", "digits", "--config", str(cfg), "--train-epsilon", "5",
                               "--set", "train.epsilon=1", "--set", "evaluate={epochs: 2}"]))
    assert job.train.epsilon == 1.0 and job.evaluate.epochs == 2 and job.evaluate.model == "plain_cnn"
    with pytest.raises(ConfigError, match="invalid output: is required"):
        job_from_args(parse(["synth", "stats", "digits", "--teacher", "t"]))


def test_nested_settings_override_the_jobs_own_defaults():
    """A teacher trains 15 epochs unless told otherwise, however its other settings are given."""
    teacher = get_job("synth.teacher")
    assert teacher.from_dict({**_req(teacher), "teacher": {"lr": 0.2}}).teacher.epochs == 15
    assert get_job("synth.pipeline").from_dict({"source": "digits", "output": "/x", "teacher": {"lr": 0.2}}
                                              ).teacher.epochs == 15
    assert get_job("dpvae.evaluate").from_dict({**_req(get_job("dpvae.evaluate")), "victim": {"epochs": 2}}
                                               ).victim.optimizer == "adam"


def _req(cls) -> dict:
    return {f.name: REQUIRED[f.name] for f in dataclasses.fields(cls)
            if f.name in REQUIRED and resolved_type(cls, f.name)[0] is str}


def test_a_run_returns_its_result_and_reports_its_metrics(ray_local, tmp_path):
    from raypriv.runtime import ResourceSpec

    job = get_job("protect").from_dict({
        "source": "digits", "output": str(tmp_path / "ue"), "resources": {"workers": 1},
        "unlearnable": {"mode": "classwise", "pgd_steps": 2, "train_steps": 2, "max_rounds": 1,
                        "epsilon_255": 16, "train_batch_size": 128, "pgd_batch_size": 256}})
    reporter = Reporter(quiet=True)
    result = job.run(reporter)
    assert result.job == "protect" and result.artifacts["corpus"] == str(tmp_path / "ue")
    assert os.path.exists(result.artifacts["manifest"]) and result.privacy is None
    assert result.metrics["rounds"] == 1 and result.metrics["epsilon_255"] == 16 and result.wall_time_s > 0
    assert reporter.reported == [result.metrics] and any("round   1" in line for line in reporter.lines)
    assert result.lines()[0] == f"corpus: {tmp_path / 'ue'}"
    assert isinstance(job.cluster(), ResourceSpec)


def test_most_flag_values_were_accepted_not_refused():
    """The per-flag test above proves little for a value the config refused; keep those few."""
    assert len(REFUSED) <= 6, REFUSED


@pytest.mark.parametrize("name", JOBS)
def test_a_uri_where_a_job_keeps_local_state_is_refused_when_the_job_is_built(name):
    """One URI policy: corpora and run storage (checkpoints, a sweep's Tune experiment) may be
    pyarrow URIs; ledgers, key files, reports and teacher weights live on a local or mounted
    filesystem, and a URI there is one ConfigError naming the setting before any work, never a
    local directory called ``s3:``."""
    cls = get_job(name)
    for field in cls.LOCAL_PATHS:
        with pytest.raises(ConfigError, match=f"invalid {field}: 's3://bucket/x' is a URI"):
            cls.from_dict({**_req(cls), field: "s3://bucket/x"})
    uri_ok = ({f.name for f in dataclasses.fields(cls)} & {"output", "synthetic", "protected"}) - set(cls.LOCAL_PATHS)
    for field in uri_ok | set(cls.STORAGE_PATHS):
        assert getattr(cls.from_dict({**_req(cls), field: "s3://bucket/x"}), field) == "s3://bucket/x"
    for field in cls.STORAGE_PATHS:                     # run storage: a filesystem pyarrow ships
        with pytest.raises(ConfigError, match=f"invalid {field}: 'ftp://bucket/x': ftp:// is not a filesystem"):
            cls.from_dict({**_req(cls), field: "ftp://bucket/x"})


def test_the_uri_policy_lists_what_each_stage_keeps_locally():
    assert get_job("protect").LOCAL_PATHS == ()                 # its corpus and checkpoints may be URIs
    assert "output" not in get_job("dpvae.sample").LOCAL_PATHS
    assert all("output" in get_job(n).LOCAL_PATHS for n in ("evaluate", "synth.evaluate", "dpvae.train",
                                                             "dpvae.evaluate", "synth.pipeline", "dpvae.pipeline",
                                                             "unlearnable.pipeline", "sweep"))
    assert get_job("sweep").LOCAL_PATHS == ("output", "budget")          # its Tune storage may be a URI
    assert {n: get_job(n).STORAGE_PATHS for n in JOBS if get_job(n).STORAGE_PATHS} == {
        "protect": ("checkpoint_dir",), "dpvae.train": ("checkpoints",), "dpvae.pipeline": ("checkpoints",),
        "mtk.train": ("checkpoints",), "mtk.pipeline": ("checkpoints",), "sweep": ("storage",)}
