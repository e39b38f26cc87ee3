"""What a protection run did, read back from its manifest: the per-round table and the headline
figures a job's Result carries. (Whether the protection *works* is the evaluation's question:
``raypriv evaluate``.)

>>> history = [{"round": 1, "surrogate_loss": 2.1, "perturbed_loss_before": 2.3, "perturbed_loss_after": 0.4,
...             "perturbed_acc": 0.62, "train_s": 1.0, "pgd_s": 3.0}]
>>> print(round_table(history))
round  surrogate loss  loss before PGD  loss after PGD  acc on perturbed  seconds
    1           2.100            2.300           0.400            62.00%      4.0
>>> run_metrics({"rounds": 1, "epsilon_255": 8, "history": history, "stop_reason": "max_rounds=1 reached"})["pgd_loss_drop"]
1.9
"""
from __future__ import annotations

from typing import Any

COLUMNS = ("round", "surrogate loss", "loss before PGD", "loss after PGD", "acc on perturbed", "seconds")


def round_table(history: list[dict[str, Any]]) -> str:
    """The per-round history as an aligned table: the surrogate's loss, the frozen surrogate's
    loss on the perturbed data before and after the round's PGD pass, and its accuracy there."""
    rows = [(str(h["round"]), f"{h['surrogate_loss']:.3f}", f"{h['perturbed_loss_before']:.3f}",
             f"{h['perturbed_loss_after']:.3f}", f"{h['perturbed_acc']:.2%}",
             f"{h.get('train_s', 0) + h.get('pgd_s', 0):.1f}") for h in history]
    widths = [max(len(r[i]) for r in [COLUMNS, *rows]) for i in range(len(COLUMNS))]
    return "\n".join("  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in [COLUMNS, *rows])


def run_metrics(manifest: dict[str, Any]) -> dict[str, Any]:
    """Headline figures of a finished protection run: rounds, budget, the last round's accuracy
    on perturbed data, how far its PGD pass lowered the surrogate's loss, and the visual cost of
    the release (PSNR and SSIM of released vs original images: mean and worst image)."""
    history = manifest.get("history") or [{}]
    last = history[-1]
    drop = None
    if "perturbed_loss_before" in last and "perturbed_loss_after" in last:
        drop = round(last["perturbed_loss_before"] - last["perturbed_loss_after"], 6)
    cost = manifest.get("visual_cost") or {}
    return {"rounds": manifest.get("rounds"), "epsilon_255": manifest.get("epsilon_255"),
            "final_perturbed_accuracy": last.get("perturbed_acc"), "pgd_loss_drop": drop,
            "stopped_at_accuracy": str(manifest.get("stop_reason", "")).startswith("perturbed accuracy"),
            "visual_cost": {key: {"mean": s["mean"], "min": s["min"]} for key, s in cost.items()}}
