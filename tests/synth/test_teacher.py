"""Teachers: trained with Ray Train and saved with provenance, or imported; bad checkpoints refused."""
import os

import pytest
import torch

from raypriv.errors import ArtifactError, ConfigError
from raypriv.classifier import VictimConfig
from raypriv.runtime import ResourceSpec
from raypriv.synth import import_teacher, load_teacher, train_teacher


def test_train_teacher_with_ray_train_and_reload(digits300, tmp_path):
    from tests.synth.synth_helpers import small_corpus

    test = small_corpus("digits", 100, split="test")
    out = str(tmp_path / "teacher")
    t = train_teacher(digits300, test, output=out, config=VictimConfig(epochs=6, batch_size=32),
                      resources=ResourceSpec(workers=2), progress=lambda m: None)
    back = load_teacher(out)
    assert back.manifest["method"] == "synth-teacher"
    assert back.manifest["input_fingerprint"] == digits300.keyed_fingerprint()
    assert back.manifest["params"]["recipe"]["epochs"] == 6 and back.manifest["test_acc"] == t.manifest["test_acc"]
    assert back.manifest["test_acc"] > 0.5          # it learned (chance is 0.1)
    assert back.weights_digest() == t.weights_digest() and back.image_shape == (8, 8, 1)
    assert sorted(os.listdir(out)) == ["manifest.json", "model.pt"]
    with pytest.raises(ArtifactError, match="already holds a teacher"):
        train_teacher(digits300, test, output=out, config=VictimConfig(epochs=1), progress=lambda m: None)


def test_import_teacher_checks_the_checkpoint(tmp_path):
    from raypriv.models import build_model

    kw = dict(in_channels=1, num_classes=10, image_size=8)
    good = tmp_path / "good.pt"
    torch.save(build_model("small_cnn", **kw).state_dict(), good)
    t = import_teacher(str(good), model="small_cnn", output=str(tmp_path / "t"), **kw)
    assert load_teacher(t.path).weights_digest() == t.weights_digest()
    with pytest.raises(ArtifactError, match="does not match model 'tiny_cnn'"):
        import_teacher(str(good), model="tiny_cnn", output=str(tmp_path / "u"), **kw)
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ArtifactError, match="cannot read a torch state_dict"):
        import_teacher(str(tmp_path / "junk.pt"), model="small_cnn", output=str(tmp_path / "v"), **kw)
    assert not (tmp_path / "u").exists() and not (tmp_path / "v").exists()
    with pytest.raises(ArtifactError, match="no readable manifest.json"):
        load_teacher(str(tmp_path))    # not an artifact at all
    (tmp_path / "manifest.json").write_text('{"method": "unlearnable-classwise"}')
    with pytest.raises(ArtifactError, match="not a teacher"):
        load_teacher(str(tmp_path))
    with pytest.raises(ConfigError, match="unknown model"):
        import_teacher(str(good), model="nope", output=str(tmp_path / "w"), **kw)
