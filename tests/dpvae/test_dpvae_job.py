"""`jobs/dpvae_train.py`: the YAML config and its errors (training itself: test_train.py)."""
import argparse
import importlib.util
import os

import pytest

from raypriv.errors import ConfigError
from raypriv.dpvae.job import DPVAEPipelineJob as DPVAEJob
from raypriv.jobs.entry import load_job_config

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SMOKE = os.path.join(ROOT, "jobs", "configs", "dpvae_smoke.yaml")


def test_smoke_config_parses_and_bad_keys_are_named():
    job = DPVAEJob.from_dict(load_job_config(SMOKE, ["train.epsilon=2", "resources.workers=1"]))
    assert job.train.epsilon == 2 and job.train.delta == 1e-4 and job.evaluate.epochs == 1
    assert job.resources.workers == 1 and job.sample_images_per_class == 20
    for bad, field in (({"train": {"epsilonn": 3}}, "train.epsilonn"), ({"train": {"epsilon": 0}}, "epsilon"),
                       ({"evaluate": {"lr": 0}}, "lr"), ({"outputs": "x"}, "outputs")):
        with pytest.raises(ConfigError, match=f"invalid {field}"):
            DPVAEJob.from_dict({"source": "digits", "output": "/tmp/x", **bad})


def test_scientific_notation_is_a_number_in_files_and_overrides(tmp_path):
    """YAML 1.1 reads ``1e-3`` as a string; job configs read it as the float users mean."""
    path = tmp_path / "job.yaml"
    path.write_text("source: digits\noutput: /tmp/x\ntrain:\n  lr: 1e-3\n  delta: 1E-6\n")
    job = DPVAEJob.from_dict(load_job_config(str(path), ["train.max_grad_norm=5e-1", "sample_temperature=.7"]))
    assert (job.train.lr, job.train.delta, job.train.max_grad_norm) == (0.001, 1e-6, 0.5)
    assert job.sample_temperature == 0.7


def test_entry_point_reports_delta_too_large_for_the_data(ray_local, tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("dpvae_train", os.path.join(ROOT, "jobs", "dpvae_train.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    args = argparse.Namespace(config=SMOKE, set=[f"output={tmp_path}/out", "train.delta=0.01"])
    assert mod.main(args) == 2
    err = capsys.readouterr().err
    assert "invalid delta: must be < 1/N" in err and "N = 1500" in err     # the declared size, above the true 1437
    assert not os.path.exists(tmp_path / "out" / "model")
