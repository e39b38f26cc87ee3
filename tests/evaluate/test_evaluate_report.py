"""End to end: real Ray Train victims (2 CPU workers) on clean vs shortcut-protected data.

The protected set carries a strong class-wise colour tint (a shortcut, like class-wise
unlearnable noise); a victim trained on it learns the tint and fails on the clean test
set, so the harness must report a clearly lower accuracy than for the clean victim.
"""
import json
import os

import numpy as np
import pytest
from PIL import Image

from tests.evaluate.eval_synthetic import NUM_CLASSES, triple
from raypriv.classifier import VictimConfig
from raypriv.evaluate import EvaluateConfig, evaluate_protection, format_table, save_grid
from raypriv.runtime import ResourceSpec

# Four victims (~40 s each on a loaded 2-core machine): clean, clean under grayscale, protected,
# and a 50 % mix under the grayscale defense, which exercises both the partial and the defense paths.
CONFIG = EvaluateConfig(victim=VictimConfig(epochs=3, batch_size=32, lr=0.05, seed=0),
                        defenses=("none",), partial=(0.5,), partial_defenses=("grayscale",))


@pytest.fixture(scope="module")
def data(ray_local):
    return triple(240, 120, seed=0)


@pytest.fixture(scope="module")
def evaluated(data, tmp_path_factory):
    clean, protected, test = data
    out = str(tmp_path_factory.mktemp("eval"))
    lines = []
    report = evaluate_protection(clean=clean, protected=protected, test=test, config=CONFIG,
                                 resources=ResourceSpec(workers=2), out_dir=out, progress=lines.append)
    return report, out, lines


def _row(report, train_set, defense, fraction):
    (row,) = [r for r in report["results"]
              if (r["train_set"], r["defense"], r["fraction"]) == (train_set, defense, fraction)]
    return row


def test_protection_effect_is_measured(evaluated):
    report, _, _ = evaluated
    clean = _row(report, "clean", "none", 0.0)["test_acc"]
    protected = _row(report, "protected", "none", 1.0)["test_acc"]
    assert clean >= 0.8, report["results"]
    assert clean - protected >= 0.25, (clean, protected)
    assert _row(report, "protected", "none", 1.0)["train_acc"] >= 0.9  # the shortcut is learned


def test_report_json_structure(evaluated):
    report, out, lines = evaluated
    with open(os.path.join(out, "report.json")) as f:
        on_disk = json.load(f)
    assert on_disk == json.loads(json.dumps(report))
    assert not [n for n in os.listdir(out) if n.startswith(".tmp-")]
    assert report["chance"] == pytest.approx(1 / NUM_CLASSES) and report["num_classes"] == NUM_CLASSES
    assert report["provenance"]["raypriv_version"]
    assert report["config"]["victim"]["epochs"] == 3 and report["config"]["defenses"] == ["none"]
    assert [(r["train_set"], r["defense"], r["fraction"]) for r in report["results"]] == [
        ("clean", "none", 0.0), ("clean", "grayscale", 0.0), ("protected", "none", 1.0),
        ("partial", "grayscale", 0.5)]
    for r in report["results"]:
        assert 0 <= r["test_acc"] <= 1 and 0 <= r["train_acc"] <= 1
        assert r["epochs"] == 3 and [h["epoch"] for h in r["history"]] == [1, 2, 3]
        assert r["checkpoint"] and os.path.exists(os.path.join(r["checkpoint"], "model.pt"))
    s = report["summary"]
    assert s["clean_test_acc"] == _row(report, "clean", "none", 0.0)["test_acc"]
    assert s["max_protected_test_acc"] == max(r["test_acc"] for r in report["results"]
                                              if r["train_set"] == "protected")
    assert len([ln for ln in lines if "test accuracy" in ln]) == 4


def test_format_table(evaluated):
    report, _, _ = evaluated
    table = format_table(report)
    lines = table.splitlines()
    assert lines[0].split()[:2] == ["train", "set"] and "test acc" in lines[0]
    assert any(ln.startswith("partial") and "grayscale" in ln and "0.50" in ln for ln in lines)
    assert "chance level: 0.3333 (3 classes)" in table
    widths = {len(ln) for ln in lines[2:5]}
    assert len(widths) == 1, "rows are aligned"


def test_grid_png(evaluated, data, tmp_path):
    _, out, _ = evaluated
    with Image.open(os.path.join(out, "grid.png")) as im:
        assert im.format == "PNG" and im.size[0] > im.size[1] > 100
    clean, protected, _ = data
    path = save_grid(clean, protected, str(tmp_path / "sub" / "g.png"), n=3, amplify=1.0)
    with Image.open(path) as im:
        small = im.size
    assert small[0] < Image.open(os.path.join(out, "grid.png")).size[0]


def test_augment_crops_and_flips():
    import torch

    from raypriv.classifier.train import augment, to_float_nchw

    x = to_float_nchw(torch.arange(2 * 8 * 8 * 3, dtype=torch.uint8).reshape(2, 8, 8, 3))
    assert x.shape == (2, 3, 8, 8) and float(x.max()) <= 1.0
    g = torch.Generator().manual_seed(0)
    assert torch.equal(augment(x, pad=0, flip=False, gen=g), x)
    flips = [augment(x, pad=0, flip=True, gen=g) for _ in range(20)]
    assert all(torch.equal(f[0], x[0]) or torch.equal(f[0], x[0].flip(-1)) for f in flips)
    assert any(not torch.equal(f, x) for f in flips)
    # A crop is the image shifted by at most ``pad`` pixels, zeros entering at the border;
    # over many draws every one of the (2·pad + 1)² shifts turns up.
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    shifts = {(dy, dx): padded[:, :, 2 + dy:10 + dy, 2 + dx:10 + dx] for dy in (-2, -1, 0, 1, 2)
              for dx in (-2, -1, 0, 1, 2)}
    seen = set()
    g = torch.Generator().manual_seed(1)
    for _ in range(40):
        crops = augment(x, pad=1, flip=False, gen=g)
        assert crops.shape == x.shape
        for i in range(len(x)):
            match = [s for s, shifted in shifts.items() if torch.equal(crops[i], shifted[i])]
            assert len(match) == 1 and max(map(abs, match[0])) <= 1, match
            seen.add(match[0])
    assert seen == {(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)}
    a = augment(x, pad=1, flip=True, gen=torch.Generator().manual_seed(5))
    b = augment(x, pad=1, flip=True, gen=torch.Generator().manual_seed(5))
    assert torch.equal(a, b)
    assert np.isfinite(a.numpy()).all()
