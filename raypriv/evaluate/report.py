"""Does the protection work? Train victims on clean vs protected data and report.

:func:`evaluate_protection` trains a fresh victim (same recipe every time) on the clean
training set and on the protected one under each training-time defense and partial
fraction, and reports each victim's accuracy on the clean *test* set. Protection works
when every protected row is far below the clean row, ideally near chance
(``1 / num_classes``); the summary's ``max_protected_test_acc`` is the strongest
defense's result, i.e. what a victim who tries all listed defenses would get.

``out_dir/report.json`` is rewritten atomically after every run, so an interrupted
evaluation keeps the finished rows; ``out_dir/grid.png`` shows a few images, their
amplified noise and the protected version.
"""
from __future__ import annotations

import dataclasses
import datetime
import os
import re
import time
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from raypriv.errors import DataError
from raypriv.files import save_figure, write_json_atomic
from raypriv.manifest import finish_report
from raypriv.evaluate.config import EvaluateConfig
from raypriv.evaluate.defenses import parse_defense
from raypriv.evaluate.partial import mix_partial

if TYPE_CHECKING:  # pragma: no cover
    from raypriv.data.corpus import Corpus
    from raypriv.runtime import ResourceSpec

REPORT_NAME = "report.json"
#: The manifest method of a finished protection evaluation.
EVALUATION_METHOD = "unlearnable-evaluation"
GRID_NAME = "grid.png"
FORMAT = "raypriv.evaluation/1"


def plan_runs(config: EvaluateConfig) -> list[tuple[str, str, float]]:
    """The ``(train_set, defense, fraction)`` victims to train, in order: the clean victim
    without defense and under every defense used below (so a defense's cost on clean data is
    told apart from what it recovers on protected data), then the protected and partial ones."""
    specs = [parse_defense(d).spec for d in config.defenses]
    if config.partial:
        specs += [parse_defense(d).spec for d in config.partial_defenses]
    runs = [("clean", spec, 0.0) for spec in dict.fromkeys(["none", *specs])]
    runs += [("protected", parse_defense(d).spec, 1.0) for d in config.defenses]
    runs += [("partial", parse_defense(d).spec, f) for f in config.partial for d in config.partial_defenses]
    return runs


def evaluate_protection(*, clean: "Corpus", protected: "Corpus", test: "Corpus", config: EvaluateConfig,
                        resources: "ResourceSpec", out_dir: str,
                        progress: Callable[[str], Any] | None = print) -> dict:
    """Train one victim per :func:`plan_runs` entry; write and return the report.

    A defense is compared like with like: the clean victim is trained under each defense too,
    and ``summary["by_defense"]`` says per defense what it costs on clean data and what it
    recovers on protected data. Returns the same dict as ``report.json``.
    """
    say = progress or (lambda _msg: None)
    os.makedirs(out_dir, exist_ok=True)
    _unfinish(out_dir)
    report = _new_report(clean=clean, protected=protected, test=test, config=config, resources=resources)
    say(f"saving example grid to {os.path.join(out_dir, GRID_NAME)}")
    save_grid(clean, protected, os.path.join(out_dir, GRID_NAME))
    report["grid"] = GRID_NAME
    runs = plan_runs(config)
    for i, (train_set, spec, fraction) in enumerate(runs, 1):
        say(f"[{i}/{len(runs)}] training victim on {train_set} data, defense={spec}, fraction={fraction:g}")
        row = _run_one(clean=clean, protected=protected, test=test, config=config, resources=resources,
                       out_dir=out_dir, train_set=train_set, spec=spec, fraction=fraction, index=i)
        report["results"].append(row)
        report["summary"] = summarize(report)
        write_json_atomic(os.path.join(out_dir, REPORT_NAME), report)
        say(f"[{i}/{len(runs)}] test accuracy {row['test_acc']:.4f} (train {row['train_acc']:.4f}, "
            f"{row['seconds']:.0f} s)")
    finish_report(out_dir, report, method=EVALUATION_METHOD, params=config.to_dict(), files=(GRID_NAME,))
    return report


def _unfinish(out_dir: str) -> None:
    """A new evaluation into ``out_dir`` is unfinished until its last victim is scored."""
    from raypriv.manifest import MANIFEST_NAME

    if os.path.exists(os.path.join(out_dir, MANIFEST_NAME)):
        os.remove(os.path.join(out_dir, MANIFEST_NAME))


def _run_one(*, clean, protected, test, config: EvaluateConfig, resources, out_dir: str, train_set: str,
             spec: str, fraction: float, index: int) -> dict:
    """Train and score one victim; returns its report row."""
    from raypriv.classifier.train import train_victim

    defense = parse_defense(spec)
    base = {"clean": clean, "protected": protected}.get(train_set)
    if base is None:
        base = mix_partial(clean, protected, fraction, seed=config.victim.seed)
    train = type(base)(ds=defense.apply(base.ds), info=base.info)
    test_in = type(test)(ds=defense.apply(test.ds, test=True), info=test.info)
    victim = dataclasses.replace(config.victim, augment=config.victim.augment and defense.augment)
    start = time.monotonic()
    result = train_victim(train, test_in, config=victim, resources=resources,
                          storage_path=os.path.join(out_dir, "runs"),
                          name=f"{index:02d}-{train_set}-{re.sub(r'[^A-Za-z0-9]+', '-', spec)}")
    return {"train_set": train_set, "defense": spec, "fraction": fraction, "test_acc": result.test_acc,
            "train_acc": result.train_acc, "epochs": result.epochs, "augment": victim.augment,
            "seconds": round(time.monotonic() - start, 2), "checkpoint": result.checkpoint_path,
            "history": result.history}


def _new_report(*, clean, protected, test, config: EvaluateConfig, resources) -> dict:
    import raypriv

    def corpus(c) -> dict:
        i = c.info
        return {"source": i.source, "split": i.split, "num_rows": i.num_rows, "image_shape": list(i.image_shape)}

    num_classes = int(test.info.num_classes)
    return {
        "format": FORMAT,
        "config": config.to_dict(),
        "resources": dataclasses.asdict(resources),
        "num_classes": num_classes,
        "chance": 1.0 / num_classes,
        "data": {"clean": corpus(clean), "protected": corpus(protected), "test": corpus(test)},
        "results": [],
        "summary": {},
        "provenance": _provenance(raypriv.__version__),
    }


def _provenance(version: str) -> dict:
    import platform

    import ray
    import torch

    return {"raypriv_version": version, "ray_version": ray.__version__, "torch_version": torch.__version__,
            "python_version": platform.python_version(),
            "created_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}


def summarize(report: dict) -> dict:
    """Headline numbers: clean accuracy, the best accuracy any defense reaches on fully
    protected data, and the drop between the two."""
    rows = report["results"]
    clean_by = {r["defense"]: r["test_acc"] for r in rows if r["train_set"] == "clean"}
    prot_by = {r["defense"]: r["test_acc"] for r in rows if r["train_set"] == "protected"}
    clean = clean_by.get("none")
    out: dict[str, Any] = {"clean_test_acc": clean, "chance": report["chance"]}
    if prot_by:
        best = max(prot_by, key=prot_by.get)
        out.update(max_protected_test_acc=prot_by[best], max_protected_defense=best)
        if clean is not None:
            out["accuracy_drop"] = clean - prot_by[best]
    out["by_defense"] = [
        {"defense": d, "clean_test_acc": clean_by[d], "protected_test_acc": prot_by[d],
         "gap": clean_by[d] - prot_by[d],
         "cost_on_clean": None if clean is None else clean - clean_by[d],
         "recovered_on_protected": None if "none" not in prot_by else prot_by[d] - prot_by["none"]}
        for d in prot_by if d in clean_by]
    return out


def format_table(report: dict) -> str:
    """The report's results as an aligned text table, with the chance level underneath."""
    head = ("train set", "defense", "fraction", "test acc", "train acc", "epochs")
    lines = [(r["train_set"], r["defense"], f"{r['fraction']:.2f}", f"{r['test_acc']:.4f}",
              f"{r['train_acc']:.4f}", str(r["epochs"])) for r in report["results"]]
    widths = [max(len(row[i]) for row in [head, *lines]) for i in range(len(head))]

    def fmt(row) -> str:
        return "  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))).rstrip()

    out = [fmt(head), "  ".join("-" * w for w in widths), *map(fmt, lines)]
    out.append(f"chance level: {report['chance']:.4f} ({report['num_classes']} classes)")
    s = report.get("summary") or {}
    if "accuracy_drop" in s:
        out.append(f"clean {s['clean_test_acc']:.4f}; best defense on protected data: "
                   f"{s['max_protected_defense']} {s['max_protected_test_acc']:.4f} "
                   f"(drop {s['accuracy_drop']:.4f})")
    for d in s.get("by_defense", []):
        if d["defense"] != "none":
            out.append(f"defense {d['defense']}: clean {d['clean_test_acc']:.4f}, protected "
                       f"{d['protected_test_acc']:.4f}; it costs {d['cost_on_clean']:+.4f} on clean data and "
                       f"recovers {d['recovered_on_protected']:+.4f} on protected data")
    return "\n".join(out)


def _select_ids(batch: dict, *, ids: list[str]) -> dict:
    mask = np.isin(np.asarray(batch["id"]).astype(str), ids)
    return {k: np.asarray(v)[mask] for k, v in batch.items()}


def grid_rows(clean: "Corpus", protected: "Corpus", *, n: int) -> list[tuple[str, int, np.ndarray, np.ndarray]]:
    """``(id, label, clean image, protected image)`` for ``n`` protected rows whose id is also
    in the clean corpus, one per class first (only these rows are collected)."""
    prot = _spread_over_classes(protected, n=n)
    ids = [str(r["id"]) for r in prot]
    found = clean.ds.map_batches(_select_ids, fn_kwargs={"ids": ids}, batch_format="numpy").take_all()
    by_id = {str(r["id"]): np.asarray(r["image"]) for r in found}
    rows = [(str(r["id"]), int(r["label"]), by_id[str(r["id"])], np.asarray(r["image"]))
            for r in prot if str(r["id"]) in by_id]
    if not rows:
        raise DataError("none of its first rows' ids occur in the clean corpus", item=f"protected corpus "
                        f"{protected.info.source!r}")
    return rows


def _spread_over_classes(corpus: "Corpus", *, n: int, max_batches: int = 20, batch_size: int = 256) -> list[dict]:
    """Up to ``n`` rows, the first of each class before any repeats; scans at most
    ``max_batches`` batches so a large corpus is never read whole."""
    first, rest = {}, []
    for i, batch in enumerate(corpus.ds.iter_batches(batch_size=batch_size, batch_format="numpy")):
        for j, label in enumerate(batch["label"]):
            row = {k: batch[k][j] for k in ("id", "label", "image")}
            if int(label) not in first:
                first[int(label)] = row
            elif len(rest) < n:
                rest.append(row)
        if len(first) >= min(n, corpus.info.num_classes) or i + 1 >= max_batches:
            break
    return ([first[k] for k in sorted(first)] + rest)[:n]


def save_grid(clean: "Corpus", protected: "Corpus", path: str, *, n: int = 10,
              amplify: float | None = None) -> str:
    """A PNG with, per column, the original image, its noise (protected - original,
    times ``amplify`` and centred at gray 128) and the protected image.

    ``amplify=None`` scales the largest absolute noise value to 127 levels. Returns ``path``.
    """
    from matplotlib.figure import Figure

    rows = grid_rows(clean, protected, n=n)
    noise = [p.astype(np.int16) - c.astype(np.int16) for _, _, c, p in rows]
    peak = max(int(np.abs(d).max()) for d in noise)
    amp = amplify if amplify is not None else 127.0 / max(peak, 1)
    names = protected.info.class_names
    fig = Figure(figsize=(1.3 * len(rows) + 0.8, 4.2), dpi=100)
    axes = fig.subplots(3, len(rows), squeeze=False)
    titles = ("original", f"noise ×{amp:.3g}", "protected")
    for j, ((rid, label, c, p), d) in enumerate(zip(rows, noise)):
        shown = (c, np.clip(128 + d * amp, 0, 255).astype(np.uint8), p)
        for i, img in enumerate(shown):
            ax = axes[i][j]
            ax.imshow(img[..., 0] if img.shape[-1] == 1 else img, cmap="gray", vmin=0, vmax=255,
                      interpolation="nearest")
            ax.set_xticks([]), ax.set_yticks([])
            if j == 0:
                ax.set_ylabel(titles[i], fontsize=8)
        axes[0][j].set_title(names[label] if 0 <= label < len(names) else str(label), fontsize=8)
    fig.suptitle(f"max |noise| = {peak}/255", fontsize=9)
    return save_figure(fig, path)
