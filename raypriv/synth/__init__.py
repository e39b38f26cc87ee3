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

from raypriv.lazy import lazy_exports

_MEMBERS = {
    'ClassBNStats': 'raypriv.synth.stats',
    'SynthConfig': 'raypriv.synth.config',
    'SynthEvalConfig': 'raypriv.synth.config',
    'Teacher': 'raypriv.synth.teacher',
    'compute_class_stats': 'raypriv.synth.stats',
    'evaluate_synthetic': 'raypriv.synth.report',
    'format_table': 'raypriv.synth.report',
    'generate': 'raypriv.synth.generation',
    'import_teacher': 'raypriv.synth.teacher',
    'load_teacher': 'raypriv.synth.teacher',
    'train_teacher': 'raypriv.synth.teacher',
}
__all__ = sorted(_MEMBERS)
__getattr__, __dir__ = lazy_exports(__name__, _MEMBERS)
