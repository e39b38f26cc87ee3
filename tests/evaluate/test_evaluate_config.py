"""Evaluation settings: defaults, validation naming the field, schedules, run plan (no Ray)."""
import math

import pytest

from raypriv.errors import ConfigError
from raypriv.classifier import VictimConfig
from raypriv.evaluate import EvaluateConfig
from raypriv.evaluate.report import plan_runs
from raypriv.classifier.train import lr_at


def test_defaults_follow_the_paper_recipe():
    v = VictimConfig()
    assert (v.model, v.batch_size, v.lr, v.momentum, v.weight_decay, v.augment) == (
        "small_cnn", 128, 0.1, 0.9, 5e-4, True)
    cfg = EvaluateConfig()
    assert cfg.defenses == ("none", "grayscale", "jpeg:75", "noaug") and cfg.partial == ()


@pytest.mark.parametrize("kwargs, field", [
    ({"epochs": 0}, "epochs"), ({"batch_size": -1}, "batch_size"), ({"lr": 0.0}, "lr"),
    ({"momentum": 1.0}, "momentum"), ({"weight_decay": -1e-4}, "weight_decay"),
    ({"schedule": "linear"}, "schedule"), ({"hflip": "yes"}, "hflip"), ({"seed": -1}, "seed"),
    ({"momentum": 0.0, "nesterov": True}, "nesterov"), ({"eval_batch_size": 0}, "eval_batch_size"),
])
def test_invalid_victim_settings_name_the_field(kwargs, field):
    with pytest.raises(ConfigError) as e:
        VictimConfig(**kwargs)
    assert e.value.field == field and field in str(e.value)


@pytest.mark.parametrize("kwargs, field", [
    ({"defenses": ("none", "blur")}, "defenses"), ({"defenses": ("jpeg:0",)}, "defenses"),
    ({"defenses": ("jpeg",)}, "defenses"), ({"defenses": ("none", "none")}, "defenses"),
    ({"partial": (0.0,)}, "partial"), ({"partial": (1.5,)}, "partial"),
    ({"partial": (0.5,), "partial_defenses": ("sharpen",)}, "partial_defenses"),
    ({"victim": {"epochs": 3}}, "victim"),
])
def test_invalid_evaluate_settings_name_the_field(kwargs, field):
    with pytest.raises(ConfigError) as e:
        EvaluateConfig(**kwargs)
    assert e.value.field == field


def test_keyword_only():
    with pytest.raises(TypeError):
        VictimConfig("small_cnn")  # noqa


def test_from_dict_round_trip_and_unknown_keys():
    cfg = EvaluateConfig(victim=VictimConfig(epochs=3), defenses=("none", "jpeg:50"), partial=(0.25, 0.5))
    assert EvaluateConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ConfigError) as e:
        EvaluateConfig.from_dict({"defences": ["none"]})
    assert e.value.field == "defences"
    with pytest.raises(ConfigError) as e:
        EvaluateConfig.from_dict({"victim": {"epoch": 3}})
    assert e.value.field == "victim.epoch"


def test_flip_default_depends_on_channels():
    assert VictimConfig().flip_for(3) and not VictimConfig().flip_for(1)
    assert VictimConfig(hflip=True).flip_for(1) and not VictimConfig(hflip=False).flip_for(3)


def test_lr_schedules():
    cos = VictimConfig(epochs=10, lr=0.1)
    assert lr_at(cos, 0) == pytest.approx(0.1) and lr_at(cos, 5) == pytest.approx(0.05)
    assert all(lr_at(cos, e) > lr_at(cos, e + 1) for e in range(9))
    step = VictimConfig(epochs=8, lr=0.1, schedule="step")
    assert [round(lr_at(step, e), 6) for e in range(8)] == [0.1] * 4 + [0.01] * 2 + [0.001] * 2
    assert lr_at(VictimConfig(schedule="constant"), 7) == 0.1
    assert not any(math.isnan(lr_at(cos, e)) for e in range(10))


def test_plan_runs_clean_under_every_defense_then_protected_then_partial():
    cfg = EvaluateConfig(defenses=("none", "jpeg:75"), partial=(0.5, 0.8), partial_defenses=("none", "noaug"))
    assert plan_runs(cfg) == [
        ("clean", "none", 0.0), ("clean", "jpeg:75", 0.0), ("clean", "noaug", 0.0),
        ("protected", "none", 1.0), ("protected", "jpeg:75", 1.0),
        ("partial", "none", 0.5), ("partial", "noaug", 0.5), ("partial", "none", 0.8), ("partial", "noaug", 0.8)]


def test_import_is_light():
    import subprocess
    import sys

    code = "import sys, raypriv.evaluate; print(sorted(m for m in ('ray', 'torch') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_summary_compares_each_defense_with_the_clean_victim_under_it():
    from raypriv.evaluate.report import format_table, summarize

    rows = [{"train_set": t, "defense": d, "fraction": f, "test_acc": a, "train_acc": 1.0, "epochs": 1}
            for t, d, f, a in [("clean", "none", 0.0, 0.95), ("clean", "jpeg:75", 0.0, 0.90),
                               ("protected", "none", 1.0, 0.20), ("protected", "jpeg:75", 1.0, 0.60)]]
    report = {"results": rows, "chance": 0.1, "num_classes": 10}
    report["summary"] = s = summarize(report)
    (jpeg,) = [d for d in s["by_defense"] if d["defense"] == "jpeg:75"]
    assert jpeg["clean_test_acc"] == 0.90 and jpeg["protected_test_acc"] == 0.60
    assert jpeg["cost_on_clean"] == pytest.approx(0.05) and jpeg["recovered_on_protected"] == pytest.approx(0.40)
    assert jpeg["gap"] == pytest.approx(0.30)
    assert "defense jpeg:75: clean 0.9000, protected 0.6000; it costs +0.0500 on clean data" in format_table(report)
