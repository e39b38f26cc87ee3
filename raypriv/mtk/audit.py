"""Key-recovery audit: can someone who holds the model but not the key unlock a secured task?

The attacker has the model (weights and all: a white box) and ``n`` labeled images, and
knows the key's public form (:class:`raypriv.mtk.keys.KeySpec`: full or patch, amplitude, the
patch's square). It searches for a pattern ``δ`` of that form and budget (``|δ| ≤ amplitude``
on the key's support, zero elsewhere) that makes the secured head answer truthfully on its
images, by projected gradient ascent on the log-likelihood of the true labels (signed steps,
``restarts`` random starts; the attacker keeps the start with the lowest loss on *its own*
images). The pattern found is rounded to 8-bit levels, as a real keyed image would be, and
scored on held-out images the attacker never saw: the **unlocked accuracy** (a locked answer
counts as a uniform guess, as in :mod:`raypriv.mtk.evaluate`). A gate that resists the audit
keeps that accuracy near chance; the secret key's accuracy is the ceiling.

Each (attacker size, restart) search runs on a Ray Data actor pool
(:func:`raypriv.runtime.pool.pool_map`), one search per call.

>>> AuditConfig(sizes=(100, 1000)).restarts
4
>>> AuditConfig(sizes=(0,))
Traceback (most recent call last):
...
raypriv.errors.ConfigError: invalid audit sizes: must be positive integers, got (0,)
"""
from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

import numpy as np

from raypriv.errors import ConfigError
from raypriv.mtk.config import AuditConfig
from raypriv.runtime.pool import PoolWorker

if TYPE_CHECKING:  # pragma: no cover
    from raypriv.data.corpus import Corpus
    from raypriv.mtk.keys import KeySpec
    from raypriv.mtk.train import MtkModel
    from raypriv.runtime import ResourceSpec

#: Salt of the id hash that splits the audit's rows into the attacker's pool and the scored rows.
AUDIT_SALT = "mtk-audit"


def recover_pattern(net, images: np.ndarray, labels: np.ndarray, *, head: int, support: np.ndarray,
                    amplitude: int, steps: int, batch_size: int, rng: np.random.Generator, device="cpu"):
    """One projected-gradient search (see the module docstring): the int16 pattern found and the
    attacker's final loss on its images."""
    import torch
    import torch.nn.functional as F

    x = torch.as_tensor(images, device=device).permute(0, 3, 1, 2).float()
    y = torch.as_tensor(labels, device=device, dtype=torch.long)
    mask = torch.as_tensor(support, device=device).permute(2, 0, 1).float()
    delta = torch.as_tensor(rng.uniform(-amplitude, amplitude, size=mask.shape), device=device).float() * mask
    step = amplitude / 10.0
    gen = torch.Generator().manual_seed(int(rng.integers(2 ** 31)))
    for t in range(steps):
        idx = torch.randperm(len(x), generator=gen)[:batch_size].to(device)
        d = delta.clone().requires_grad_(True)
        loss = F.cross_entropy(net(((x[idx] + d).clamp(0, 255) / 255.0))[head], y[idx])
        (grad,) = torch.autograd.grad(loss, d)
        with torch.no_grad():
            lr = step if t < steps // 2 else step / 4
            delta = ((delta - lr * grad.sign()) * mask).clamp(-amplitude, amplitude)
    pattern = delta.round().to(torch.int16).permute(1, 2, 0).cpu().numpy()
    with torch.no_grad():
        keyed = (x + torch.as_tensor(pattern, device=device).permute(2, 0, 1).float()).clamp(0, 255) / 255.0
        final = sum(float(F.cross_entropy(net(keyed[i:i + 512])[head], y[i:i + 512], reduction="sum"))
                    for i in range(0, len(x), 512)) / max(len(x), 1)
    return pattern, final


class KeyRecovery(PoolWorker):
    """Per call, one search: rows carry ``size`` and ``restart``; out come the attacker's loss,
    the pattern's unlocked accuracy on the scored rows, and its share of locked answers."""

    def setup(self, shared, **_):
        from raypriv.models import ModelPayload

        self.net = ModelPayload.of(shared["payload"]).build(self.device).eval()
        for p in self.net.parameters():
            p.requires_grad_(False)
        self.s = shared

    def __call__(self, batch: dict) -> dict:
        from raypriv.mtk.evaluate import answers, scored
        from raypriv.mtk.keys import apply_patterns

        s, out = self.s, {"size": [], "restart": [], "attacker_loss": [], "unlocked": [], "locked": []}
        for size, restart in zip(batch["size"], batch["restart"]):
            rng = np.random.default_rng([s["seed"], int(size), int(restart)])
            pick = s["attacker_order"][:int(size)]
            pattern, loss = recover_pattern(
                self.net, s["attacker_images"][pick], s["attacker_labels"][pick], head=s["head"],
                support=s["support"], amplitude=s["amplitude"], steps=s["steps"], batch_size=s["batch_size"],
                rng=rng, device=self.device)
            flat = _logits(self.net, apply_patterns(s["scored_images"], [pattern]), self.device)
            a = answers(flat, s["layout"])[s["head"]]
            unlocked, locked = scored(a, s["scored_labels"], s["layout"].num_classes[s["head"]])
            out["size"].append(int(size))
            out["restart"].append(int(restart))
            out["attacker_loss"].append(loss)
            out["unlocked"].append(unlocked)
            out["locked"].append(locked)
        return {k: np.asarray(v) for k, v in out.items()}


def _logits(net, images: np.ndarray, device) -> np.ndarray:
    import torch

    from raypriv.models import to_float_nchw

    with torch.no_grad():
        return np.concatenate([torch.cat(net(to_float_nchw(torch.from_numpy(images[i:i + 512]), device)), dim=1)
                               .cpu().numpy() for i in range(0, len(images), 512)])


def audit_keys(model: "MtkModel", held_out: "Corpus", spec: "KeySpec", *, config: AuditConfig,
               resources: "ResourceSpec", attacker: "Corpus | None" = None) -> dict[str, Any]:
    """The key-recovery audit of every secured task (see the module docstring).

    The attacker draws its labeled images from ``attacker`` when given (for example the training
    corpus, for a stronger attacker with more images), else from half of ``held_out`` (by id
    hash); the patterns are scored on the other half of ``held_out``. Returns ``{task: {size:
    {"unlocked": accuracy of the attacker's chosen start, "best": the best start's, "locked": ...}}}``."""
    import ray

    from raypriv.hashing import id_uniform
    from raypriv.mtk.config import column_of
    from raypriv.runtime.execute import run
    from raypriv.runtime.pool import pool_map

    layout = model.layout
    rows = _rows(held_out, {t: column_of(held_out.info, t) for t in layout.secured})
    scored = id_uniform(rows["id"], seed=config.seed, salt=AUDIT_SALT) >= 0.5
    pool = _rows(attacker, {t: column_of(attacker.info, t) for t in layout.secured}) if attacker is not None \
        else {k: v[~scored] for k, v in rows.items()}
    sizes = attacker_sizes(config.sizes, len(pool["id"]))
    order = np.random.default_rng(config.seed).permutation(len(pool["id"]))
    report: dict[str, Any] = {}
    for j, (task, head) in enumerate(zip(layout.secured, layout.secured_index)):
        shared = {"payload": model.payload, "layout": layout, "head": head, "seed": config.seed,
                  "support": spec.support(j, model.image_shape), "amplitude": spec.amplitude,
                  "steps": config.steps, "batch_size": config.batch_size, "attacker_order": order,
                  "attacker_images": pool["image"], "attacker_labels": pool[task],
                  "scored_images": rows["image"][scored], "scored_labels": rows[task][scored]}
        jobs = ray.data.from_items([{"size": n, "restart": r} for n in sizes for r in range(config.restarts)])
        found = run(pool_map(jobs, KeyRecovery, resources=resources, batch_size=1, shared=shared),
                    lambda d: d.take_all())
        report[task] = {str(n): _summarize([f for f in found if int(f["size"]) == n]) for n in sizes}
    out = {"attacker": "held-out half" if attacker is None else attacker.info.source,
           "attacker_pool": int(len(pool["id"])), "scored_rows": int(scored.sum()),
           "config": dataclasses.asdict(config), "tasks": report}
    if sizes != config.sizes:
        out["note"] = (f"the attacker's pool holds {len(pool['id'])} labeled images: sizes {list(config.sizes)} were "
                       f"audited as {list(sizes)} (pass a larger attacker corpus for the rest)")
    return out


def attacker_sizes(requested: tuple[int, ...], pool: int) -> tuple[int, ...]:
    """The attacker sizes an audit can run with a pool of ``pool`` labeled images: each requested
    size, capped at the pool (the whole pool stands in for every larger size, once).

    >>> attacker_sizes((100, 1000), 500)
    (100, 500)
    >>> attacker_sizes((100, 1000, 2000), 50)
    (50,)
    """
    if pool < 1:
        raise ConfigError("audit attacker", "the attacker's pool holds no labeled images")
    return tuple(dict.fromkeys(min(n, pool) for n in requested))


def _summarize(found: list[dict]) -> dict[str, float]:
    chosen = min(found, key=lambda f: float(f["attacker_loss"]))
    return {"unlocked": float(chosen["unlocked"]), "locked": float(chosen["locked"]),
            "best": max(float(f["unlocked"]) for f in found), "restarts": len(found)}


def _rows(corpus: "Corpus", columns: dict[str, str]) -> dict[str, np.ndarray]:
    """``id``, ``image`` and, per task, its labels (``columns``: task → row column), by id."""
    from raypriv.runtime.execute import run

    got = run(corpus.ds.select_columns(["id", "image", *dict.fromkeys(columns.values())]), lambda d: d.take_all())
    got.sort(key=lambda r: str(r["id"]))
    out = {"id": np.array([str(r["id"]) for r in got]), "image": np.stack([r["image"] for r in got]).astype(np.uint8)}
    for task, c in columns.items():
        out[task] = np.array([int(r[c]) for r in got], dtype=np.int64)
    return out
