"""MTK decoupling: keep the unsecured heads' un-keyed outputs from telling more about a secured
task than the unsecured tasks' true answers do.

Rows without a true key (un-keyed, decoy and gate-hardening rows) fall into *cells*: the rows
with the same true labels of every unsecured task. What the unsecured answers reveal about a
secured task through the cell is irreducible (no model answering the unsecured tasks correctly
can hide it); what the outputs vary *within* a cell (confidences, near-misses) is the excess a
probe reads on top. Three terms, weighted by λ (``decoupling``), chosen by
``decoupling_target``:

* ``secured`` (the default): λ times the share of the within-cell spread of the unsecured heads'
  outputs (log-probabilities) that the secured labels explain (:func:`secured_share`, a Fisher
  ratio: how far each (cell, secured label) group's mean lies from its cell's mean, which is
  what a linear probe reads inside a cell), over each batch. Its gradient pulls the secured
  classes' means inside each cell together and mostly leaves the rest of the within-cell spread
  (digit-independent style) alone (small groups are noisy: :func:`secured_share`), so it fights
  neither the unsecured tasks nor the gate. Groups of one row in a worker's batch are left out:
  it needs rows of several secured classes per cell in each batch, which ``mnist5k-pairs`` (200
  (cell, left digit) groups) rarely has. Measured in README "MTK: what we measured". Variants
  measured worse and dropped: means from a decayed memory of 50 batches (so that lone rows
  count), weighted Euclidean or by the inverse within-cell covariance (the latter blew the
  outputs' spread up and raised leakage), and an adversary per cell pushed to ``p(y_s | cell)``.
* ``cell``: λ times the share of the spread of the unsecured heads' logits left within the cells
  (:func:`cell_spread`): 0 when the outputs are a function of the unsecured answers alone. It
  also pulls together rows that differ in style only, and the network can lower it by moving
  the cells' means apart. Measured: up to λ = 3 it lowers leakage at no cost to the unsecured
  tasks but stops short of the irreducible level and costs keyed accuracy; λ = 10 collapses
  the network.
* ``uniform``: an adversary, one linear layer per secured task over the unsecured heads'
  logits, learns ``y_s`` from them (on detached logits: its loss trains only the adversary), and
  the network is trained through the adversary's frozen weights to make its answer uniform
  (a maximum-entropy adversary, ``λ · CE(adversary(logits), uniform)``, bounded below, unlike a
  reversed gradient). It also fights the irreducible part, which the network can only hide by
  answering the unsecured tasks wrongly: the trade-off toward the base rate, at a cost in
  unsecured accuracy.

>>> import torch
>>> codes = torch.tensor([0, 0, 1, 1])
>>> float(cell_spread(torch.tensor([[1.0], [1.0], [5.0], [5.0]]), codes))   # a function of the cell
0.0
>>> float(cell_spread(torch.tensor([[1.0], [5.0], [1.0], [5.0]]), codes))   # the cell explains nothing
1.0
>>> z = torch.tensor([[2.0], [0.0], [2.0], [0.0], [9.0], [5.0], [9.0], [5.0]])  # 2 cells, 2 rows per group
>>> cells = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])
>>> float(secured_share(z, cells, torch.tensor([3, 3, 5, 5, 7, 7, 9, 9])))       # style: explains nothing
0.0
>>> float(secured_share(z, cells, torch.tensor([3, 5, 3, 5, 7, 9, 7, 9])))       # the label explains it all
1.0
"""
from __future__ import annotations

from raypriv.mtk.config import MtkConfig, TaskLayout


def uses_adversary(cfg: MtkConfig) -> bool:
    """Whether the decoupling term needs the adversary module (the ``uniform`` target)."""
    return cfg.decoupling > 0 and cfg.decoupling_target == "uniform"


def cell_codes(labels, layout: TaskLayout):
    """One integer per row for its combination of true unsecured labels (``labels``: ``(B, T)``
    tensor in head order)."""
    import torch

    code = torch.zeros_like(labels[:, 0])
    for t in layout.unsecured_index:
        code = code * layout.num_classes[t] + labels[:, t]
    return code


def cell_spread(seen, codes):
    """The share of the spread of ``seen`` (one row of unsecured logits per input) left within
    the cells ``codes``: ``Σ ‖z − mean of its cell‖² / Σ ‖z − overall mean‖²``."""
    import torch

    _, cell = torch.unique(codes, return_inverse=True)
    within = ((seen - _means(seen, cell)[cell]) ** 2).sum()
    total = ((seen - seen.mean(dim=0)) ** 2).sum()
    return within / total.clamp_min(1e-6)


def secured_share(seen, codes, secured):
    """What the secured labels ``secured`` explain of the within-cell spread of ``seen``, ``None``
    when no cell holds two secured classes with two rows each:
    ``Σ ‖mean of the row's (cell, secured label) group − mean of its cell‖² / Σ ‖z − mean of its
    cell‖²`` (a Fisher ratio: what a linear probe reads about ``secured`` inside the cells), over
    the rows that count, times their share of the rows: each row that counts is pushed as hard as
    a row of a batch-mean loss, however few they are (unweighted, the few rows that count on
    ``mnist5k-pairs``, 20 cells, were pushed so hard that λ = 1 collapsed the network).

    Only rows in groups of two or more (a row alone in its group would count all its spread as
    explained) and in cells with two or more such groups (spread in a cell with one secured label
    hides nothing, and counting it would let the network dilute the ratio) count. The
    denominator is held fixed in the gradient, so the gradient only pulls the groups' means
    toward their cells' means (with it in the gradient, a network whose groups are tight could
    lower the ratio only by adding noise), and it is floored at a within-cell variance of one logit unit, which
    bounds the push while the logits are near-constant (early training; unfloored, λ = 1
    collapsed the network in epoch 1). With few rows per group the group means are noisy: even
    pure style spread then scores about (groups − 1) / (rows − 1) of a cell, so small batches
    also pull some style spread together."""
    import torch

    _, cell = torch.unique(codes, return_inverse=True)
    _, group = torch.unique(codes * (int(secured.max()) + 1) + secured, return_inverse=True)
    big = torch.bincount(group) > 1
    cell_of_group = torch.zeros_like(big, dtype=cell.dtype).scatter_(0, group, cell)
    groups_in_cell = torch.bincount(cell_of_group[big], minlength=int(cell.max()) + 1)
    kept = big[group] & (groups_in_cell[cell] > 1)
    if not kept.any():
        return None
    share = kept.sum() / len(seen)
    seen, cell, group = seen[kept], cell[kept], group[kept]
    cell_means, group_means = _means(seen, cell), _means(seen, group)
    explained = ((group_means[group] - cell_means[cell]) ** 2).sum()
    within = ((seen - cell_means[cell]) ** 2).sum()
    return share * explained / within.detach().clamp_min(seen.numel())


def _means(seen, index):
    import torch

    sums = torch.zeros(int(index.max()) + 1, seen.shape[1], dtype=seen.dtype, device=seen.device)
    counts = torch.bincount(index, minlength=len(sums)).clamp_min(1).unsqueeze(1).to(seen.dtype)
    return sums.index_add(0, index, seen) / counts


def _cell_term(seen, codes, rows, layout: TaskLayout):
    return cell_spread(seen, codes)


def _secured_term(seen, codes, rows, layout: TaskLayout):
    """The mean of :func:`secured_share` over the secured tasks with rows to compare."""
    shares = [v for s in layout.secured_index if (v := secured_share(seen, codes, rows[:, s])) is not None]
    return sum(shares) / len(shares) if shares else seen.sum() * 0


#: The adversary-free terms over the unsecured logits, by ``decoupling_target``.
CELL_TERMS = {"cell": _cell_term, "secured": _secured_term}


def decoupling_loss(logits, adversary, labels, mask, layout: TaskLayout, cfg: MtkConfig, *,
                    weight: float | None = None):
    """The decoupling term of a batch over its rows without a true key (see the module
    docstring), weighted by ``weight`` (default ``cfg.decoupling``; 0 until the gate has formed:
    the ``uniform`` adversary still learns, the network is not pushed); with the ``uniform`` target
    also the adversary's own loss."""
    import torch
    import torch.nn.functional as F

    weight = cfg.decoupling if weight is None else weight
    plain = mask == 0
    if plain.sum() < 2:          # nothing to decouple; the adversary still joins the graph (DDP)
        return sum(w.sum() for w in adversary[0]) * 0 if adversary is not None else logits[0].new_zeros(())
    rows = labels[plain]
    if cfg.decoupling_target in CELL_TERMS:
        seen = torch.cat([logits[i][plain] for i in layout.unsecured_index], dim=1)
        term = CELL_TERMS[cfg.decoupling_target]
        return weight * term(seen, cell_codes(rows, layout), rows, layout)
    loss = logits[0].new_zeros(())
    for learn, confuse, s in zip(*adversary, layout.secured_index):
        loss = loss + F.cross_entropy(learn[plain], rows[:, s])
        loss = loss - weight * F.log_softmax(confuse[plain], dim=1).mean(dim=1).mean()
    return loss
