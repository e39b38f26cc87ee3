"""Does my protection work? Train fresh victims on clean vs protected data and compare.

The harness trains a victim from scratch, with the same recipe, on the clean and on the
protected training set (under training-time defenses and partial protection) with Ray
Train, and reports each victim's accuracy on the clean test set.

Example::

    from raypriv.classifier import VictimConfig
    from raypriv.evaluate import EvaluateConfig, evaluate_protection, format_table
    from raypriv.runtime import ResourceSpec

    config = EvaluateConfig(victim=VictimConfig(epochs=10), defenses=("none", "jpeg:75"), partial=(0.5,))
    report = evaluate_protection(clean=clean, protected=protected, test=test, config=config,
                                 resources=ResourceSpec(workers=2), out_dir="out/eval")
    print(format_table(report))   # also in out/eval/report.json; images in out/eval/grid.png

Modules: :mod:`~raypriv.evaluate.config` (settings), :mod:`~raypriv.evaluate.defenses`
(defense registry), :mod:`~raypriv.classifier.train` (one Ray Train victim run, in the core),
:mod:`~raypriv.evaluate.partial` (partial protection mixes), :mod:`~raypriv.evaluate.report`
(the whole comparison, report.json, table and image grid). Importing this package does
not import Ray or torch.
"""

from raypriv.lazy import lazy_exports

_MEMBERS = {
    'Defense': 'raypriv.evaluate.defenses',
    'EvaluateConfig': 'raypriv.evaluate.config',
    'available_defenses': 'raypriv.evaluate.defenses',
    'evaluate_protection': 'raypriv.evaluate.report',
    'format_table': 'raypriv.evaluate.report',
    'mix_partial': 'raypriv.evaluate.partial',
    'parse_defense': 'raypriv.evaluate.defenses',
    'register_defense': 'raypriv.evaluate.defenses',
    'save_grid': 'raypriv.evaluate.report',
}
__all__ = sorted(_MEMBERS)
__getattr__, __dir__ = lazy_exports(__name__, _MEMBERS)
