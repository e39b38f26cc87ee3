"""MTK decoupling: keep the unsecured heads' un-keyed outputs from telling more about a secured
task than the unsecured tasks' true answers do.

An adversary, one linear layer per secured task over the concatenated logits of the unsecured
heads, learns ``y_s`` from them on rows carrying no true key (un-keyed and decoy rows), on
detached logits, so its loss trains only the adversary. The network is trained, through the
adversary's frozen weights, to make the adversary's answer equal a *target distribution*
(``decoupling_target``), with weight λ:

* ``conditional`` (the default): ``p(y_s | the row's true unsecured labels)``, counted on the
  training rows. An adversary that reads only what the unsecured tasks answer cannot do better
  than this distribution, so the term is at its floor when the outputs reveal exactly the
  unsecured answers: it removes the *excess* leakage (confidences, near-misses) and leaves the
  irreducible part, which no model that answers the unsecured tasks correctly can hide;
* ``uniform``: the uniform distribution (a maximum-entropy adversary). It also fights the
  irreducible part, so it can only move leakage below that level by making the unsecured
  answers wrong: the trade-off toward the base rate, at a cost in unsecured accuracy.

Both terms are cross-entropies against a fixed distribution, so they are bounded below (unlike
reversing the adversary's gradient).

>>> import numpy as np
>>> from raypriv.mtk.config import TaskLayout
>>> layout = TaskLayout(("digit", "parity"), (4, 2), ("digit",))
>>> labels = np.array([[0, 0], [2, 0], [2, 0], [1, 1]]); mask = np.zeros(4, dtype=int)
>>> prior = conditional_prior([(labels, mask)], layout)
>>> prior["codes"], prior["probs"][0]
([0, 1], [[0.3333333333333333, 0.0, 0.6666666666666666, 0.0], [0.0, 1.0, 0.0, 0.0]])
"""
from __future__ import annotations

from typing import Iterable

import numpy as np

from raypriv.errors import ConfigError
from raypriv.mtk.config import MtkConfig, TaskLayout

#: Targets that need the adversary module (``cell`` is computed from the outputs alone).
ADVERSARY_TARGETS = ("conditional", "uniform")
#: Mixed-radix cell codes of the unsecured labels must fit in int64.
_MAX_CELLS = 2 ** 62


def cell_codes(labels, layout: TaskLayout):
    """One integer per row for its combination of unsecured labels (``labels``: ``(B, T)`` in
    head order; numpy or torch)."""
    code = labels[:, 0] * 0
    for t in layout.unsecured_index:
        code = code * layout.num_classes[t] + labels[:, t]
    return code


def conditional_prior(batches: Iterable[tuple[np.ndarray, np.ndarray]], layout: TaskLayout) -> dict:
    """``p(y_s | unsecured labels)`` per secured task over the rows without a true key.

    ``batches`` yields ``(labels (B, T) in head order, key masks (B,))``. Returns the sorted cell
    codes seen and, per secured task, one probability row per code (plain lists: it travels in
    the training loop's config and is never saved)."""
    cells = 1
    for t in layout.unsecured_index:
        cells *= layout.num_classes[t]
    if cells > _MAX_CELLS:
        raise ConfigError("decoupling_target", f"the unsecured tasks have {cells:.3g} label combinations, too many "
                                               "to count; use decoupling_target=uniform")
    counts: dict[int, list[np.ndarray]] = {}
    for labels, mask in batches:
        plain = np.asarray(labels, dtype=np.int64)[np.asarray(mask) == 0]
        if not len(plain):
            continue
        codes = cell_codes(plain, layout)
        for code in np.unique(codes):
            rows = plain[codes == code]
            row_counts = counts.setdefault(int(code), [np.zeros(layout.num_classes[s]) for s in layout.secured_index])
            for j, s in enumerate(layout.secured_index):
                row_counts[j] += np.bincount(rows[:, s], minlength=layout.num_classes[s])
    codes = sorted(counts)
    probs = [[(counts[c][j] / counts[c][j].sum()).tolist() for c in codes] for j in range(len(layout.secured_index))]
    return {"codes": codes, "probs": probs}


def dataset_prior(ds, *, columns, mask_column: str | None, layout: TaskLayout) -> dict:
    """:func:`conditional_prior` over a Ray dataset: ``columns`` are the label columns in head
    order, ``mask_column`` the key masks (``None``: every row counts)."""
    from raypriv.runtime.execute import run

    def batches(d):
        for b in d.iter_batches(batch_size=65_536, batch_format="numpy"):
            labels = np.stack([b[c] for c in columns], axis=1)
            yield labels, b[mask_column] if mask_column else np.zeros(len(labels), dtype=np.int64)

    keep = [*columns, mask_column] if mask_column else list(columns)
    return run(ds.select_columns(keep), lambda d: conditional_prior(batches(d), layout))


def prior_tensors(prior: dict, device) -> tuple:
    """The prior as ``(codes, [probs per secured task])`` tensors on ``device``."""
    import torch

    return (torch.as_tensor(prior["codes"], dtype=torch.int64, device=device),
            [torch.as_tensor(p, dtype=torch.float32, device=device) for p in prior["probs"]])


def uses_adversary(cfg: MtkConfig) -> bool:
    return cfg.decoupling > 0 and cfg.decoupling_target in ADVERSARY_TARGETS


def cell_spread(seen, codes):
    """The share of the spread of ``seen`` (rows of unsecured logits) left within the cells of
    ``codes`` (rows with the same true unsecured labels): 0 when the outputs are a function of
    the unsecured answers alone, 1 when the cells explain none of it. Scale-free, so shrinking
    the logits does not lower it."""
    import torch

    _, cell = torch.unique(codes, return_inverse=True)
    sums = torch.zeros(int(cell.max()) + 1, seen.shape[1], dtype=seen.dtype, device=seen.device)
    sums = sums.index_add(0, cell, seen)
    counts = torch.bincount(cell).unsqueeze(1).to(seen.dtype)
    within = ((seen - (sums / counts)[cell]) ** 2).sum()
    total = ((seen - seen.mean(dim=0)) ** 2).sum()
    return within / total.clamp_min(1e-6)


def decoupling_loss(logits, adversary, labels, mask, layout: TaskLayout, cfg: MtkConfig, *, prior=None):
    """The decoupling term over the rows without a true key (see the module docstring): for the
    adversarial targets, the adversary's own loss plus λ times the network's; ``prior`` (from
    :func:`prior_tensors`) for the conditional target."""
    import torch
    import torch.nn.functional as F

    plain = mask == 0
    loss = labels.new_zeros((), dtype=torch.float32)
    if plain.sum() < 2:
        return loss
    rows = labels[plain]
    if cfg.decoupling_target == "cell":
        seen = torch.cat([logits[i][plain] for i in layout.unsecured_index], dim=1)
        return cfg.decoupling * cell_spread(seen, cell_codes(rows, layout))
    at = None
    if cfg.decoupling_target == "conditional":
        codes, probs = prior
        at = torch.searchsorted(codes, cell_codes(rows, layout)).clamp_max(len(codes) - 1)
    for j, (learn, confuse, s) in enumerate(zip(*adversary, layout.secured_index)):
        loss = loss + F.cross_entropy(learn[plain], rows[:, s])
        log_p = F.log_softmax(confuse[plain], dim=1)
        target = probs[j][at] if at is not None else torch.full_like(log_p, 1.0 / log_p.shape[1])
        loss = loss - cfg.decoupling * (target * log_p).sum(dim=1).mean()
    return loss
