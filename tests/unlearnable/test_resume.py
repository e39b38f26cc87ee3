"""Resuming from a per-round checkpoint gives the same noise as an uninterrupted run (the
sample-wise run's checkpoints, noise included, in the session's S3-compatible object store)."""
import numpy as np
import pytest

from raypriv.errors import ArtifactError
from raypriv.runtime import ResourceSpec
from raypriv.unlearnable import UnlearnableConfig, generate_noise

from tests.unlearnable.ue_helpers import FAST

QUIET = dict(progress=lambda m: None, resources=ResourceSpec(workers=2))


def _noise_by_id(res):
    return {r["id"]: r["noise"] for r in res.work.select_columns(["id", "noise"]).take_all()}


@pytest.mark.parametrize("mode", ["samplewise", "classwise"])
def test_resume_matches_uninterrupted_run(digits200, tmp_path, mode):
    cfg = UnlearnableConfig(mode=mode, max_rounds=2, stop_accuracy=1.0, **FAST)
    straight = generate_noise(digits200, config=cfg, checkpoint_dir=str(tmp_path / "a"), **QUIET)
    from tests.conftest import s3_prefix

    ckpt = s3_prefix("ue-checkpoints") if mode == "samplewise" else str(tmp_path / "b")
    first = UnlearnableConfig(**{**cfg.to_dict(), "max_rounds": 1})   # the run "dies" after round 1
    generate_noise(digits200, config=first, checkpoint_dir=ckpt, **QUIET)
    lines = []
    resumed = generate_noise(digits200, config=cfg, checkpoint_dir=ckpt, progress=lines.append,
                             resources=ResourceSpec(workers=2))
    assert any("resuming" in m for m in lines) and len(resumed.history) == 2
    from raypriv import storage

    assert storage.exists(storage.join(ckpt, "latest.json"))
    assert [h["surrogate_loss"] for h in resumed.history] == [h["surrogate_loss"] for h in straight.history]
    if mode == "samplewise":
        a, b = _noise_by_id(straight), _noise_by_id(resumed)
        assert a.keys() == b.keys()
        assert all(np.array_equal(a[k], b[k]) for k in a)           # bit-identical
    else:
        np.testing.assert_allclose(straight.class_noise, resumed.class_noise, rtol=0, atol=1e-6)


def test_checkpoint_from_other_settings_is_refused(digits200, tmp_path):
    cfg = UnlearnableConfig(mode="classwise", max_rounds=1, stop_accuracy=1.0, **FAST)
    generate_noise(digits200, config=cfg, checkpoint_dir=str(tmp_path), **QUIET)
    other = UnlearnableConfig(**{**cfg.to_dict(), "epsilon": 4 / 255, "step_size": 0.4 / 255})
    with pytest.raises(ArtifactError, match="epsilon"):
        generate_noise(digits200, config=other, checkpoint_dir=str(tmp_path), **QUIET)
