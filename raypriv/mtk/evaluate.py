"""``raypriv mtk evaluate``: does the key gate the secured tasks, and what leaks without it?

On a held-out multi-task corpus, every image is scored (Ray Data actor pool) under each key
condition: no key, all keys, each secured task's key alone, and a **forged** key per secured
task (a random pattern of the same form and amplitude, not the secret). Reported per task and
condition: accuracy, and the share of *locked* answers (models trained with ``target="locked"``).
A locked answer says nothing about the image and is scored as a uniform guess (1/K correct),
the accuracy of a user who guesses when the model will not answer. A secured task should be
at chance without its key and with a forged or another task's key, and near the unsecured
model's accuracy with it.

**Leakage** (un-keyed inputs): a logistic-regression probe learns each secured label from the
model's un-keyed outputs: from the unsecured heads' logits, from their answers alone (one-hot:
what :func:`raypriv.mtk.predict.predict` returns) and from every head's logits. The probe is
*cross-fitted*: the held-out rows fall into ``PROBE_FOLDS`` folds by id hash and each fold is
scored by a probe fitted on the others, so every row is scored once (a half/half split scored
half the rows: on the 792 validation rows of ``mnist5k-pairs``, ±2 points of noise at 20 %
leakage). Two references: the majority-class base rate, and the **irreducible** leakage, the
same probe on the *true* unsecured labels (one-hot): no model that answers the unsecured tasks
correctly can hide that much. Leakage above it is what the model's outputs add, and what
decoupling removes.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from raypriv.errors import ConfigError
from raypriv.runtime.pool import PoolWorker

if TYPE_CHECKING:  # pragma: no cover
    from raypriv.data.corpus import Corpus
    from raypriv.mtk.keys import KeySet
    from raypriv.mtk.train import MtkModel
    from raypriv.runtime import ResourceSpec

#: Salt of the id hash that assigns held-out rows to the probe's folds.
PROBE_SALT = "mtk-probe"
#: Folds of the cross-fitted leakage probe (each row scored by a probe fitted on the others).
PROBE_FOLDS = 5
NO_KEY, ALL_KEYS = "none", "all"


def conditions(keys: "KeySet | None", *, seed: int = 0) -> dict[str, list]:
    """``{condition: patterns to add}``: no key, all keys, each key alone, a forged key per task.
    Forged keys come from a seeded generator: they are an attacker's guesses, not secrets."""
    out: dict[str, list] = {NO_KEY: []}
    if keys is None:
        return out
    rng = np.random.default_rng(seed)
    out[ALL_KEYS] = keys.patterns()
    for i, t in enumerate(keys.tasks):
        out[f"key:{t}"] = [keys.pattern(t)]
        out[f"forged:{t}"] = [keys.spec.random_pattern(i, keys.image_shape, rng=rng)]
    return out


class MtkScorer(PoolWorker):
    """Per batch: every head's logits under every key condition (``logits:<condition>``)."""

    def setup(self, shared, *, columns: tuple[str, ...]):
        from raypriv.models import ModelPayload

        self.net = ModelPayload.of(shared["payload"]).build(self.device).eval()
        self.conditions = shared["conditions"]
        self.columns = columns

    def __call__(self, batch: dict) -> dict:
        import torch

        from raypriv.models import to_float_nchw
        from raypriv.mtk.keys import apply_patterns

        images = np.asarray(batch["image"], dtype=np.uint8)
        out = {"id": np.asarray(batch["id"]).astype(str),
               "labels": np.stack([np.asarray(batch[c], dtype=np.int64) for c in self.columns], axis=1)}
        with torch.no_grad():
            for name, patterns in self.conditions.items():
                x = to_float_nchw(torch.from_numpy(apply_patterns(images, patterns)), self.device)
                out[f"logits:{name}"] = torch.cat(self.net(x), dim=1).cpu().numpy().astype(np.float32)
        return out


def score(model: "MtkModel", corpus: "Corpus", keys: "KeySet | None", *, resources: "ResourceSpec",
          seed: int = 0) -> dict[str, Any]:
    """Every held-out row's labels and logits under every condition, gathered on the driver."""
    from raypriv.mtk.config import column_of
    from raypriv.runtime.execute import run
    from raypriv.runtime.pool import pool_map

    columns = tuple(column_of(corpus.info, t) for t in model.layout.names)
    conds = conditions(keys, seed=seed)
    ds = pool_map(corpus.ds, MtkScorer, resources=resources, batch_size=256,
                  shared={"payload": model.payload, "conditions": conds}, options={"columns": columns})
    rows = run(ds, lambda d: d.take_all())
    order = np.argsort([r["id"] for r in rows], kind="stable")
    out = {"id": np.array([rows[i]["id"] for i in order]),
           "labels": np.stack([rows[i]["labels"] for i in order])}
    for name in conds:
        out[name] = np.stack([rows[i][f"logits:{name}"] for i in order])
    return out


def split_logits(flat: np.ndarray, layout) -> list[np.ndarray]:
    """Concatenated logits ``(B, Σ head sizes)`` as one array per head."""
    edges = np.cumsum((0,) + tuple(layout.head_sizes))
    return [flat[:, a:b] for a, b in zip(edges[:-1], edges[1:])]


def answers(flat: np.ndarray, layout) -> list[np.ndarray]:
    """Per task, the predicted class of each row; ``-1`` where a secured head answers locked."""
    out = []
    for k, h in zip(layout.num_classes, split_logits(flat, layout)):
        a = h.argmax(1)
        out.append(np.where(a >= k, -1, a))
    return out


def scored(answer: np.ndarray, labels: np.ndarray, num_classes: int) -> tuple[float, float]:
    """``(accuracy, share of locked answers)`` of one task's answers (``-1``: locked), a locked
    answer counting as a uniform guess (1/K correct)."""
    if not len(answer):
        return 0.0, 0.0
    shut = answer < 0
    return float(((answer == labels).sum() + shut.sum() / num_classes) / len(answer)), float(shut.mean())


def accuracy_table(scores: dict, layout) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, float]]]:
    """``{condition: {task: accuracy}}`` (a locked answer counts 1/K) and ``{condition: {task:
    share of locked answers}}``."""
    table, locked = {}, {}
    for name, flat in scores.items():
        if name in ("id", "labels"):
            continue
        table[name], locked[name] = {}, {}
        for i, (t, k, a) in enumerate(zip(layout.names, layout.num_classes, answers(flat, layout))):
            table[name][t], locked[name][t] = scored(a, scores["labels"][:, i], k)
    return table, locked


def probe_folds(ids, *, folds: int = PROBE_FOLDS) -> np.ndarray:
    """The leakage probe's fold of each held-out row: an id hash, so a row keeps its fold across
    models and conditions (every probe of a report is scored on the same rows)."""
    from raypriv.hashing import id_uniform

    return np.minimum((id_uniform(ids, seed=0, salt=PROBE_SALT) * folds).astype(int), folds - 1)


def cross_fitted(x: np.ndarray, y: np.ndarray, fold: np.ndarray) -> float:
    """Accuracy of a logistic-regression probe of ``y`` from ``x``, each fold scored by a probe fitted
    on the other folds (standardized on them; a fit set with one class predicts that class).

    >>> x = np.repeat(np.eye(3), 20, axis=0); y = np.repeat(np.arange(3), 20)
    >>> cross_fitted(x, y, np.arange(60) % 5)                      # x tells y exactly
    1.0
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    correct = 0
    for f in np.unique(fold):
        fit, test = fold != f, fold == f
        if len(np.unique(y[fit])) < 2:
            correct += int((y[test] == y[fit][0]).sum())
            continue
        scaler = StandardScaler().fit(x[fit])
        clf = LogisticRegression(max_iter=2000).fit(scaler.transform(x[fit]), y[fit])
        correct += int((clf.predict(scaler.transform(x[test])) == y[test]).sum())
    return correct / max(len(y), 1)


def majority_rate(y: np.ndarray, fold: np.ndarray) -> float:
    """The base rate, cross-fitted like the probe: each fold guesses the other folds' majority class."""
    correct = sum(int((y[fold == f] == np.bincount(y[fold != f]).argmax()).sum()) for f in np.unique(fold)
                  if (fold != f).any())
    return correct / max(len(y), 1)


def one_hot(classes: list[np.ndarray], layout, tasks) -> np.ndarray:
    """The one-hot codes of ``tasks``' classes side by side (``classes[t]``: task t's class per
    row); one zero column when there are no tasks."""
    if not tasks:
        return np.zeros((len(classes[0]), 1))
    return np.concatenate([np.eye(layout.num_classes[t])[classes[t]] for t in tasks], axis=1)


def leakage(scores: dict, layout) -> dict[str, dict[str, float]]:
    """Per secured task: probe accuracy from un-keyed unsecured logits, from the unsecured
    answers, from all logits, and the two references (majority base rate, irreducible: the probe
    on true unsecured labels), all cross-fitted on the same folds (:func:`cross_fitted`)."""
    fold = probe_folds(scores["id"])
    heads = split_logits(scores[NO_KEY], layout)
    unsecured = layout.unsecured_index
    labels = scores["labels"]
    truth = one_hot(list(labels.T), layout, unsecured)
    said = one_hot(answers(scores[NO_KEY], layout), layout, unsecured)
    seen = np.concatenate([heads[i] for i in unsecured], axis=1) if unsecured else np.zeros((len(labels), 1))
    out = {}
    for s in layout.secured_index:
        y = labels[:, s]
        out[layout.names[s]] = {
            "base_rate": majority_rate(y, fold),
            "irreducible": cross_fitted(truth, y, fold),
            "from_unsecured_outputs": cross_fitted(seen, y, fold),
            "from_unsecured_answers": cross_fitted(said, y, fold),
            "from_all_outputs": cross_fitted(scores[NO_KEY], y, fold),
        }
    return out


def summary(report: dict[str, Any]) -> dict[str, float]:
    """A report's headline figures, the same names for any tasks (what a sweep compares):
    ``keyed_accuracy`` (mean over secured tasks, every key applied), ``unsecured_accuracy`` (mean
    over unsecured tasks, no key), ``unkeyed_accuracy`` (the worst secured task without a key),
    ``leakage`` and ``leakage_irreducible`` (the most leaking secured task's probe on un-keyed
    unsecured outputs, and its reference), ``audit_unlocked`` (the audit's best recovered
    pattern, any size; absent without an audit)."""
    secured = list(report["tasks"]["secured"])
    names = list(report["tasks"]["names"])
    unsecured = [t for t in names if t not in secured]
    acc = report["accuracy"]
    out: dict[str, float] = {}
    if unsecured:
        out["unsecured_accuracy"] = float(np.mean([acc[NO_KEY][t] for t in unsecured]))
    if secured:
        out["keyed_accuracy"] = float(np.mean([acc[ALL_KEYS][t] for t in secured]))
        out["unkeyed_accuracy"] = float(max(acc[NO_KEY][t] for t in secured))
    leaks = [v for t, v in report.get("leakage", {}).items()]
    if leaks:
        worst = max(leaks, key=lambda v: v["from_unsecured_outputs"] - v["irreducible"])
        out["leakage"], out["leakage_irreducible"] = worst["from_unsecured_outputs"], worst["irreducible"]
    audit = (report.get("audit") or {}).get("tasks")
    if audit:
        out["audit_unlocked"] = float(max(r["unlocked"] for sizes in audit.values() for r in sizes.values()))
    return out


def evaluate_mtk(model: "MtkModel", test: "Corpus", keys: "KeySet | None", *, resources: "ResourceSpec",
                 seed: int = 0, leakage_of: tuple[str, ...] | None = None) -> dict[str, Any]:
    """Accuracy under every key condition and leakage (see the module docstring) as a report dict.

    ``leakage_of`` names the tasks whose leakage through the *other* heads is measured (default:
    the secured ones); an ordinary multi-task model (no key) is measured with the tasks its MTK
    counterpart secures."""
    import dataclasses

    unknown = sorted(set(leakage_of or ()) - set(model.layout.names))
    if unknown:
        raise ConfigError("leakage_of", f"unknown task(s) {unknown}; the model's tasks are {list(model.layout.names)}")
    model.check_corpus(test)
    if keys is not None:
        model.check_keys(keys)
    scores = score(model, test, keys, resources=resources, seed=seed)
    accuracy, locked = accuracy_table(scores, model.layout)
    leak_layout = model.layout if leakage_of is None else dataclasses.replace(model.layout, secured=tuple(leakage_of))
    return {"tasks": model.layout.to_dict(), "rows": int(len(scores["id"])),
            "accuracy": accuracy, "locked": locked, "leakage": leakage(scores, leak_layout)}
