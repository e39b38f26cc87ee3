"""Synthetic datasets from class-wise BatchNorm statistics (Soufleri, Saha & Roy, 2022).

A teacher with BatchNorm layers is trained on the private corpus; for every class the mean
and variance of each BN layer's input over that class's images are recorded; random noise
is then optimized until, for a batch labeled ``c``, the teacher's BN batch statistics match
class ``c``'s. New models are trained on the synthetic set instead of the private one.

Four steps, each a Ray job (``raypriv synth teacher|stats|generate|evaluate`` on the CLI)::

    from raypriv.data import load_corpus
    from raypriv.classifier import VictimConfig
    from raypriv.synth import (SynthConfig, compute_class_stats, evaluate_synthetic,
                               generate, train_teacher)

    train, test = load_corpus("mnist5k"), load_corpus("mnist5k", split="test")
    teacher = train_teacher(train, test, output="out/teacher", config=VictimConfig(epochs=10))
    stats = compute_class_stats(train, teacher)
    stats.save("out/stats")
    generate(teacher, stats, output="out/synth", config=SynthConfig(images_per_class=100))
"""
from __future__ import annotations

from raypriv.synth.config import SynthConfig
from raypriv.synth.generate import generate
from raypriv.synth.report import SynthEvalConfig, evaluate_synthetic, format_table
from raypriv.synth.stats import ClassBNStats, compute_class_stats
from raypriv.synth.teacher import Teacher, import_teacher, load_teacher, train_teacher

__all__ = ["ClassBNStats", "SynthConfig", "SynthEvalConfig", "Teacher", "compute_class_stats", "evaluate_synthetic",
           "format_table", "generate", "import_teacher", "load_teacher", "train_teacher"]
