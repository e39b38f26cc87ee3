"""What a user sees when a command or a job fails: one line naming the problem (the raypriv
error raised inside a Ray worker, unwrapped), no Ray traceback or log lines unless
``--verbose``, and no output left behind."""
import os
import subprocess
import sys

import numpy as np
import pytest

from raypriv.errors import DataError
from raypriv.runtime.execute import run_entry_point

RAYPRIV = os.path.join(os.path.dirname(sys.executable), "raypriv")
JOBS = os.path.join(os.path.dirname(__file__), "..", "jobs")


@pytest.fixture(scope="module")
def mixed_sizes(tmp_path_factory):
    """An ImageFolder tree whose one image ``train/b/big.png`` is 9×9 among 8×8 ones."""
    from PIL import Image

    root = tmp_path_factory.mktemp("mixed")
    for cls in ("a", "b"):
        os.makedirs(root / "train" / cls)
        for i in range(4):
            Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(root / "train" / cls / f"{i}.png")
    Image.fromarray(np.zeros((9, 9, 3), np.uint8)).save(root / "train" / "b" / "big.png")
    return str(root)


def _only_the_error(stderr: str, prefix: str) -> None:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith(f"{prefix}: error: train/b/big.png: mixed image sizes"), stderr


def test_a_command_shows_only_the_raypriv_error_from_inside_a_worker(mixed_sizes, tmp_path):
    out = tmp_path / "out"
    p = subprocess.run([RAYPRIV, "protect", f"imagefolder:{mixed_sizes}", "-o", str(out)],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 2
    _only_the_error(p.stderr, "raypriv")
    assert not out.exists()


def test_a_job_entry_point_shows_only_the_raypriv_error(mixed_sizes, tmp_path):
    config = tmp_path / "job.yaml"
    config.write_text(f"source: imagefolder:{mixed_sizes}\noutput: {tmp_path / 'out'}\n")
    p = subprocess.run([sys.executable, os.path.join(JOBS, "protect_unlearnable.py"), "--config", str(config)],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 2
    _only_the_error(p.stderr, "protect_unlearnable")
    assert not (tmp_path / "out").exists()


def _fails_inside(exc):
    def fn():
        try:
            raise exc
        except Exception as inner:
            raise RuntimeError("Ray task failed: a long wrapped traceback\n...\nthe last line") from inner
    return fn


def test_run_entry_point_unwraps_a_chained_raypriv_error(capsys):
    assert run_entry_point(_fails_inside(DataError("bad label", item="row 7")), name="x") == 2
    assert capsys.readouterr().err == "x: error: row 7: bad label\n"


def test_any_other_error_is_one_line_and_verbose_shows_its_traceback(capsys):
    assert run_entry_point(_fails_inside(KeyError("k")), name="x") == 1
    err = capsys.readouterr().err
    assert err == "x: error: RuntimeError: the last line (run with --verbose for the traceback)\n"
    assert run_entry_point(_fails_inside(KeyError("k")), name="x", verbose=True) == 1
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and err.rstrip().endswith("x: error: RuntimeError: the last line")
