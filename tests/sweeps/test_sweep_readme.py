"""The README's sweep commands parse as written, and every sweep config in jobs/configs builds its
sweep and each of its trials' jobs (scored on the validation split, with the sweep's resources)."""
import os
import shlex

import pytest

from raypriv.jobs.entry import load_job_config
from raypriv.sweeps import SweepJob
from raypriv.sweeps.trials import build_jobs, plan_trials

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def readme_sweep_commands() -> list[list[str]]:
    readme = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    block = readme.split("## Sweeps:", 1)[1].split("```bash\n", 1)[1].split("```", 1)[0]
    return [shlex.split(line, comments=True) for line in block.splitlines() if line.strip()]


def test_readme_sweep_commands_build_their_sweeps():
    from raypriv.cli import get_args_parser, job_from_args

    commands = readme_sweep_commands()
    assert len(commands) == 5 and all(c[:2] == ["raypriv", "sweep"] for c in commands)
    sweeps = [job_from_args(get_args_parser().parse_args(c[1:])) for c in commands]
    assert [s.job for s in sweeps] == ["dpvae.pipeline", "dpvae.pipeline", "mtk.pipeline", "unlearnable.pipeline",
                                       "synth.pipeline"]


@pytest.mark.parametrize("name,trials", [("sweep_smoke", 2), ("dpvae_sweep", 9), ("mtk_sweep", 3), ("unlearnable_sweep", 3),
                                         ("synth_sweep", 4)])
def test_every_sweep_config_builds_its_trials_on_the_validation_split(name, trials):
    sweep = SweepJob.from_dict(load_job_config(os.path.join(ROOT, "jobs", "configs", f"{name}.yaml")))
    params, candidates = plan_trials(sweep)
    jobs, _ = build_jobs(sweep, params, candidates)
    assert len(params) == len(jobs) == trials and candidates == []
    for i, job in enumerate(jobs):
        assert job.source.endswith("#validation=0.2") and job.test_split == "validation"
        assert job.output == os.path.join(sweep.output, "trials", f"{i:03d}")
        assert job.resources.workers == sweep.trial_workers
