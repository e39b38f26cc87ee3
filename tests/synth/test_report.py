"""`evaluate_synthetic`: utility rows, nearest-real similarity and membership inference, end to end."""
import json
import os

import numpy as np
import pytest

from raypriv.data import load_corpus
from raypriv.errors import ConfigError
from raypriv.classifier import DistillConfig, VictimConfig
from raypriv.runtime import ResourceSpec
from raypriv.synth import SynthConfig, SynthEvalConfig, evaluate_synthetic, format_table, generate
from raypriv.synth.report import first_per_class, nearest_real, repeated

RES = ResourceSpec(workers=2)


@pytest.fixture(scope="module")
def synthetic(digits_teacher, digits_stats, tmp_path_factory):
    out = generate(digits_teacher, digits_stats, output=str(tmp_path_factory.mktemp("s") / "syn"), resources=RES,
                   config=SynthConfig(images_per_class=4, batch_size=4, iterations=20), progress=lambda m: None)
    return load_corpus(f"parquet:{out}")


def test_nearest_real_finds_an_exact_copy(digits300, ray_local):
    rows = digits300.ds.take(5)
    images = np.stack([r["image"] for r in rows])
    ids, found, l2 = nearest_real(images, digits300, resources=RES)
    assert list(ids) == [r["id"] for r in rows] and (found == images).all() and (l2 == 0).all()


def test_first_per_class_uses_the_index_in_the_id(synthetic):
    two = first_per_class(synthetic, 2)
    assert two.info.num_rows == 20 and all(r["id"].endswith(("/00000", "/00001")) for r in two.ds.take_all())


def test_repeated_set_holds_every_row_equally_often_and_shuffled(synthetic):
    rows = repeated(synthetic, 3, seed=0).ds.take_all()
    ids = [r["id"] for r in rows]
    assert len(ids) == 120 and all(ids.count(i) == 3 for i in set(ids)) and len(set(ids)) == 40
    labels = [int(r["label"]) for r in rows]
    assert labels != sorted(labels)         # not three class-ordered copies back to back


def _with_planted_copy(synthetic, real):
    """``synthetic`` with its first image of class 3 replaced by a real image of class 3."""
    from raypriv.data import Corpus

    victim = next(r for r in real.ds.take_all() if int(r["label"]) == 3)
    target = next(r["id"] for r in synthetic.ds.take_all() if int(r["label"]) == 3 and r["id"].endswith("/00000"))

    def plant(batch):
        images = np.array(batch["image"])
        images[np.asarray(batch["id"]) == target] = victim["image"]
        return {**batch, "image": images}

    planted = synthetic.ds.map_batches(plant, batch_format="numpy").materialize()
    return Corpus(ds=planted, info=synthetic.info), target, victim["id"]


def _losses_and_accuracy(checkpoint, corpus):
    """Per-example cross-entropy and accuracy of a saved victim, in plain torch (no Ray)."""
    import torch
    import torch.nn.functional as F

    from raypriv.models import build_model

    h, _, c = corpus.info.image_shape
    model = build_model("small_cnn", in_channels=c, num_classes=corpus.info.num_classes, image_size=h)
    model.load_state_dict(torch.load(os.path.join(checkpoint, "model.pt"), map_location="cpu", weights_only=True))
    rows = corpus.ds.take_all()
    x = torch.as_tensor(np.stack([r["image"] for r in rows])).permute(0, 3, 1, 2).float() / 255
    y = torch.as_tensor([int(r["label"]) for r in rows])
    with torch.no_grad():
        logits = model.eval()(x)
    return F.cross_entropy(logits, y, reduction="none").numpy(), float((logits.argmax(1) == y).float().mean())


def test_evaluate_synthetic_reports_utility_similarity_and_mia(synthetic, digits300, tmp_path):
    """Each section checked against what is known or recomputed outside raypriv: a real image
    planted in the synthetic set is found as the one exact copy; the attack's AUC equals
    scikit-learn's on losses recomputed in plain torch from the saved models; both utility
    rows' accuracies equal their saved models' on the test set, and both beat chance."""
    from sklearn.metrics import roc_auc_score

    from tests.synth.synth_helpers import small_corpus

    test = small_corpus("digits", 100, split="test")
    planted, synth_id, real_id = _with_planted_copy(synthetic, digits300)
    cfg = SynthEvalConfig(victim=VictimConfig(epochs=2, batch_size=32), images_per_class=(4,), grid=4)
    report = evaluate_synthetic(synthetic=planted, real_train=digits300, real_test=test, config=cfg,
                                resources=RES, out_dir=str(tmp_path), progress=lambda m: None)
    kinds = [(u["train_set"], u["images_per_class"]) for u in report["utility"]]
    assert kinds == [("real", None), ("synthetic", 4)]
    assert [u["rows"] for u in report["utility"]] == [300, 40]
    assert [u["repeats"] for u in report["utility"]] == [1, 8]   # 40 synthetic rows trained as 320: equal steps
    real_row, synth_row = report["utility"]
    for row in (real_row, synth_row):
        _, acc = _losses_and_accuracy(row["checkpoint"], test)
        assert row["test_acc"] == pytest.approx(acc, abs=1e-6), row
    assert real_row["test_acc"] > 0.5 and synth_row["test_acc"] > 0.15   # both learned (chance 0.1)
    assert synth_row["relative_to_real"] == pytest.approx(synth_row["test_acc"] / real_row["test_acc"])

    nr = report["nearest_real"]
    assert nr["searched"] == 40 and nr["exact_copies"] == 1 and nr["ssim"]["max"] == pytest.approx(1.0)
    assert nr["most_similar"][0] == {"synthetic": synth_id, "real": real_id, "ssim": pytest.approx(1.0)}
    assert nr["ssim"]["median"] < 0.9                  # the other 39 are not copies
    for side, row in (("real_trained", real_row), ("synthetic_trained", synth_row)):
        m = report["membership_inference"][side]
        assert (m["members"], m["nonmembers"]) == (300, 100)
        members, _ = _losses_and_accuracy(row["checkpoint"], digits300)
        nonmembers, _ = _losses_and_accuracy(row["checkpoint"], test)
        expected = roc_auc_score(np.r_[np.ones(300), np.zeros(100)], -np.r_[members, nonmembers])
        assert m["auc"] == pytest.approx(expected, abs=1e-6), side
    on_disk = json.loads((tmp_path / "report.json").read_text())
    assert on_disk["utility"][0]["test_acc"] == report["utility"][0]["test_acc"]
    # structured values, not repr strings: the config reads back as the dataclass it was
    assert SynthEvalConfig(**{**on_disk["config"], "victim": VictimConfig(**on_disk["config"]["victim"]),
                              "distill": DistillConfig(**on_disk["config"]["distill"]),
                              "images_per_class": tuple(on_disk["config"]["images_per_class"])}) == report["config"]
    assert os.path.getsize(tmp_path / "nearest.png") > 1000
    assert on_disk["samples_png"] == str(tmp_path / "samples.png") and os.path.getsize(tmp_path / "samples.png") > 1000
    assert "synthetic, 4 per class" in format_table(report)


def test_asking_for_more_images_than_generated_is_refused(synthetic, digits300):
    with pytest.raises(ConfigError, match="images_per_class"):
        evaluate_synthetic(synthetic=synthetic, real_train=digits300, real_test=digits300, out_dir="/tmp/never",
                           config=SynthEvalConfig(images_per_class=(5,)), progress=lambda m: None)


def test_teacher_labels_train_the_victim_even_when_the_class_labels_are_useless(digits300, digits_teacher, tmp_path):
    """Every training label is 0, so a hard-label victim can only learn "always 0" (10 % on
    this test set); with the teacher's soft labels the victim beats that widely."""
    from raypriv.data import Corpus
    from raypriv.classifier.train import train_victim
    from raypriv.synth.report import SynthEvalConfig as Cfg

    def zero_labels(batch):
        return {**batch, "label": np.zeros_like(batch["label"])}

    wrong = Corpus(ds=digits300.ds.map_batches(zero_labels, batch_format="numpy").materialize(), info=digits300.info)
    test = digits300.head(200)
    victim = VictimConfig(epochs=4, batch_size=32, lr=0.05)
    kw = dict(config=victim, resources=RES, storage_path=str(tmp_path))
    soft = train_victim(wrong, test, teacher=digits_teacher.payload(), distill=Cfg().distill, **kw)
    zeros = sum(int(r["label"]) == 0 for r in test.ds.take_all()) / 200
    assert zeros < 0.15 and soft.test_acc > 0.3


def test_teacher_labels_need_the_teacher(synthetic, digits300):
    with pytest.raises(ConfigError, match="labels"):
        evaluate_synthetic(synthetic=synthetic, real_train=digits300, real_test=digits300, out_dir="/tmp/never",
                           config=SynthEvalConfig(images_per_class=(2,), labels="teacher"), progress=lambda m: None)
