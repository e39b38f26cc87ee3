"""The README's MTK commands parse as written into the jobs they name (flags and settings)."""
import os
import shlex

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def readme_mtk_commands() -> list[list[str]]:
    readme = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    block = readme.split("Multi-Trigger-Key (see `raypriv mtk --help`):", 1)[1]
    block = block.split("```bash\n", 1)[1].split("```", 1)[0]
    return [shlex.split(line, comments=True) for line in block.splitlines() if line.strip()]


def test_readme_mtk_commands_build_their_jobs():
    from raypriv.cli import get_args_parser, job_from_args

    commands = readme_mtk_commands()
    assert [c[2] for c in commands] == ["keys", "train", "evaluate", "predict", "predict", "pipeline", "train",
                                        "evaluate"]
    jobs = [job_from_args(get_args_parser().parse_args(c[1:])) for c in commands]
    assert [j.name for j in jobs] == ["mtk.keys", "mtk.train", "mtk.evaluate", "mtk.predict", "mtk.predict",
                                      "mtk.pipeline", "mtk.train", "mtk.evaluate"]
    assert jobs[0].secured == ("digit",) and jobs[1].mtk.decoupling == 1
    assert jobs[3].keys is None and jobs[4].keys == "secret/digit.keys"
    assert jobs[2].audit is not None                    # the audit is part of evaluate by default
    assert jobs[6].keys is None and jobs[7].keys is None and jobs[7].leakage_of == ("digit",)   # the ordinary model


def test_the_smoke_config_parses_and_bad_keys_are_named():
    import pytest

    from raypriv.errors import ConfigError
    from raypriv.jobs.entry import load_job_config
    from raypriv.mtk.job import MtkPipelineJob

    smoke = os.path.join(ROOT, "jobs", "configs", "mtk_smoke.yaml")
    job = MtkPipelineJob.from_dict(load_job_config(smoke, ["mtk.decoupling=0.5"]))
    assert job.mtk.decoupling == 0.5 and job.secured == ("digit",) and job.audit.sizes == (50,)
    assert job.key.form == "full" and job.resources.workers == 2
    for bad, field in (({"mtk": {"decoupling": -1}}, "decoupling"), ({"key": {"form": "dots"}}, "key form"),
                       ({"audit": {"sizes": [0]}}, "audit sizes"), ({"mtk": {"target": "x"}}, "target")):
        with pytest.raises(ConfigError, match=f"invalid {field}"):
            MtkPipelineJob.from_dict({"source": "mnist5k-tasks", "keys": "/tmp/k", "output": "/tmp/x", **bad})
