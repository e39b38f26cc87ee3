"""The `raypriv` command line, run as a user would (a subprocess with its own Ray)."""
import json
import os
import subprocess
import sys

import pytest

RAYPRIV = os.path.join(os.path.dirname(sys.executable), "raypriv")


def run(*args, timeout=300):
    return subprocess.run([RAYPRIV, *args], capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("cmd", [[], ["protect"], ["evaluate"], ["datasets"], ["datasets", "export"], ["demo"],
                                 ["synth"], ["synth", "teacher"], ["synth", "stats"], ["synth", "generate"],
                                 ["synth", "evaluate"]])
def test_help(cmd):
    p = run(*cmd, "--help")
    assert p.returncode == 0 and "usage: raypriv" in p.stdout


def test_datasets_list_names_every_source():
    p = run("datasets", "list")
    assert p.returncode == 0, p.stderr
    for name in ("digits", "mnist5k", "cifar10:PATH", "imagefolder:PATH", "parquet:PATH"):
        assert name in p.stdout


def test_bad_budget_is_a_usage_error_naming_the_flag():
    p = run("protect", "digits", "-o", "/tmp/never", "--epsilon", "8")
    assert p.returncode == 2 and "--epsilon" in p.stderr and "8/255" in p.stderr


def test_bad_setting_is_refused_before_ray_starts(tmp_path):
    p = run("protect", "digits", "-o", str(tmp_path / "x"), "--pgd-steps", "0")
    assert p.returncode == 2 and "pgd_steps" in p.stderr
    assert not (tmp_path / "x").exists()


def test_preset_flags_reach_the_job_config():
    from raypriv.cli import get_args_parser, job_from_args

    parse = get_args_parser().parse_args
    default = job_from_args(parse(["protect", "cifar10:/data", "-o", "/tmp/never"])).unlearnable
    assert default.surrogate == "tiny_cnn" and not default.reinit_surrogate          # strong
    digits = job_from_args(parse(["protect", "mnist5k", "-o", "/tmp/never", "--preset", "restart",
                                          "--min-rounds", "2", "--max-rounds", "3"])).unlearnable
    assert digits.reinit_surrogate and (digits.min_rounds, digits.max_rounds) == (2, 3)


@pytest.mark.slow
def test_protect_then_resume_refusal_end_to_end(tmp_path):
    out = tmp_path / "ue"
    args = ["protect", "digits", "-o", str(out), "--mode", "classwise", "--surrogate", "tiny_cnn",
            "--pgd-steps", "2", "--train-steps", "2", "--max-rounds", "1", "--epsilon", "16/255",
            "--step-size", "2/255", "--workers", "2"]
    p = run(*args)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    assert "round   1" in p.stdout and "wrote" in p.stdout
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["method"] == "unlearnable-classwise" and manifest["epsilon_255"] == 16
    again = run(*args)
    assert again.returncode == 2 and "already holds" in again.stderr
