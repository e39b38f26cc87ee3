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
  what a linear probe reads inside a cell). Its gradient pulls the secured classes' means
  inside each cell together and mostly leaves the rest of the within-cell spread
  (digit-independent style) alone, so it fights neither the unsecured tasks nor the gate. The
  means come from the batch (:func:`secured_share`, the default), or with ``decoupling_rows``
  > 0 from a :class:`GroupMemory` of the last rows of each group seen by any worker, so that a
  row alone in its group in a batch is pushed too (one worker's batch of ``mnist5k-pairs``, 100
  (cell, left digit) groups, has ~5 % of its rows in groups of two or more); each row then gets
  exactly the batch term's gradient, from means over more rows (:func:`remembered_share`).
  Measured (README "MTK: what we measured", λ = 3, seed 0): on ``mnist5k-pairs`` 16 rows bring
  leakage from 31.6 % to 19.6 % (irreducible 19.2) but cost the unsecured tasks 1.8 points; on
  ``mnist5k-tasks`` they leave 64.5 % where the batch's means reach the irreducible 61.2 %.
  Variants measured worse and dropped: means decayed over a fixed 50 steps (no effect on
  ``mnist5k-tasks``), weighted by the inverse within-cell covariance (blew the outputs' spread
  up and raised leakage), and an adversary per cell pushed to ``p(y_s | cell)``.
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

from typing import Any

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


def _means(seen, index, *, weights=None):
    """The (``weights``-weighted) mean of the rows of ``seen`` per value of ``index``."""
    import torch

    sums = torch.zeros(int(index.max()) + 1, seen.shape[1], dtype=seen.dtype, device=seen.device)
    if weights is None:
        counts = torch.bincount(index, minlength=len(sums)).to(seen.dtype)
    else:
        counts = torch.zeros(len(sums), dtype=seen.dtype, device=seen.device).index_add(0, index, weights.to(seen.dtype))
        seen = seen * weights.to(seen.dtype).unsqueeze(1)
    return sums.index_add(0, index, seen) / counts.clamp_min(1).unsqueeze(1)


class GroupMemory:
    """The last ``rows`` outputs (detached) of each (secured task, cell, secured label) group of
    un-keyed rows seen by *any* worker (each step's rows are all-gathered, so every worker holds
    the same memory): the group and cell means the ``secured`` term pushes every row of a batch
    against, including the rows alone in their group in that batch.

    A horizon in rows per group, not in steps: a frequent group's means stay as fresh as the
    batch's (``mnist5k-tasks``: ~3 rows per group and worker batch, so 16 rows span ~3 steps),
    a rare one's reach back as far as they must (``mnist5k-pairs``: 100 groups, ~0.3 rows per
    group and worker batch). The memory is checkpointed with the trainee (a resumed run
    continues it), never saved with the model.

    >>> import torch
    >>> memory = GroupMemory(rows=2)
    >>> memory.add(0, torch.tensor([[1.0], [2.0], [3.0]]), torch.tensor([5, 5, 5]))
    >>> memory.means(0)
    (tensor([5]), tensor([[2.5000]]), tensor([2.]))
    """

    def __init__(self, *, rows: int):
        self.rows = rows
        self.kept: dict[tuple[int, int], Any] = {}

    def add(self, task: int, seen, group) -> None:
        """Remember the rows ``seen`` (detached) of groups ``group`` of secured head ``task`` (this
        process only: :func:`remember` adds every worker's)."""
        import torch

        seen = seen.detach()
        for g in group.unique().tolist():
            old = self.kept.get((task, g))
            new = seen[group == g] if old is None else torch.cat([old, seen[group == g]])
            self.kept[(task, g)] = new[-self.rows:]

    def means(self, task: int):
        """The groups of secured head ``task`` (sorted ids), their means and row counts; ``None``
        before any."""
        import torch

        keys = sorted(g for t, g in self.kept if t == task)
        if not keys:
            return None
        rows = [self.kept[(task, g)] for g in keys]
        return (torch.tensor(keys, dtype=torch.long), torch.stack([r.mean(dim=0) for r in rows]),
                torch.tensor([float(len(r)) for r in rows]))

    def state_dict(self) -> dict:
        return {"rows": self.rows, "kept": {f"{t}:{g}": v.cpu() for (t, g), v in self.kept.items()}}

    def load_state_dict(self, state: dict, *, device=None) -> None:
        self.rows = int(state["rows"])
        self.kept = {tuple(int(p) for p in k.split(":")): v.to(device) for k, v in state["kept"].items()}


def remember(memory: GroupMemory, seen, codes, rows, layout: TaskLayout) -> None:
    """Add a batch's un-keyed unsecured outputs ``seen`` (cells ``codes``, labels ``rows``) of every
    worker to ``memory``, for every secured task: a collective, every worker calls it in step."""
    import torch

    seen, labels = _gathered(seen.detach(), torch.stack([codes, *(rows[:, s] for s in layout.secured_index)], 1))
    for k, s in enumerate(layout.secured_index):
        memory.add(s, seen, labels[:, 0] * layout.num_classes[s] + labels[:, k + 1])


def _gathered(seen, labels):
    """``seen`` and ``labels`` (rows of a float and of an integer tensor) of every worker, in rank
    order (as is outside a process group of several)."""
    import torch
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return seen, labels
    world = dist.get_world_size()
    sizes = [torch.zeros(1, dtype=torch.long, device=seen.device) for _ in range(world)]
    dist.all_gather(sizes, torch.tensor([len(seen)], device=seen.device))
    sizes = [int(n) for n in sizes]
    out = []
    for mine in (seen, labels):
        padded = torch.cat([mine, mine.new_zeros(max(sizes) - len(mine), mine.shape[1])])
        every = [torch.empty_like(padded) for _ in range(world)]
        dist.all_gather(every, padded)
        out.append(torch.cat([t[:n] for t, n in zip(every, sizes)]))
    return tuple(out)


def remembered_share(seen, codes, secured, memory: GroupMemory, task: int, classes: int):
    """:func:`secured_share` with the means from ``memory`` (holding this batch, :func:`remember`):
    the value is
    the share of the batch rows' within-cell spread their groups' offsets ``m_g − m_c`` explain,
    and each row's gradient is the one :func:`secured_share` gives it (``2 (m_g − m_c)`` over
    the fixed, floored within-cell spread, times the share of rows that count), so a row alone
    in its group in the batch is pushed as hard as one in a group of many. Groups with fewer
    than two remembered rows and cells with fewer than two such groups push nothing; ``None``
    when no row of the batch counts."""
    import torch

    group = codes * classes + secured
    if (remembered := memory.means(task)) is None:
        return None
    ids, means, counts = (v.to(seen.device) for v in remembered)
    big = counts > 1
    _, cell_of = torch.unique(ids // classes, return_inverse=True)
    cell_means = _means(means, cell_of, weights=counts * big)        # over the remembered rows
    groups_in_cell = torch.bincount(cell_of[big], minlength=len(cell_means))
    at = torch.searchsorted(ids, group)
    kept = big[at] & (groups_in_cell[cell_of[at]] > 1)
    if not kept.any():
        return None
    offset = (means[at] - cell_means[cell_of[at]])[kept]
    rows = seen[kept]
    within = ((rows.detach() - cell_means[cell_of[at]][kept]) ** 2).sum().clamp_min(rows.numel())
    share = kept.sum() / len(seen)
    value = share * (offset ** 2).sum() / within
    push = share * 2 * (rows * offset).sum() / within
    return value + push - push.detach()


def _cell_term(seen, codes, rows, layout: TaskLayout, memory):
    return cell_spread(seen, codes)


def _secured_term(seen, codes, rows, layout: TaskLayout, memory):
    """The mean of :func:`secured_share` (:func:`remembered_share` with a ``memory``) over the
    secured tasks with rows to compare."""
    if memory is not None:
        remember(memory, seen, codes, rows, layout)

    def share(s):
        if memory is None:
            return secured_share(seen, codes, rows[:, s])
        return remembered_share(seen, codes, rows[:, s], memory, s, layout.num_classes[s])

    shares = [v for s in layout.secured_index if (v := share(s)) is not None]
    return sum(shares) / len(shares) if shares else seen.sum() * 0


#: The adversary-free terms over the unsecured logits, by ``decoupling_target``.
CELL_TERMS = {"cell": _cell_term, "secured": _secured_term}


def decoupling_loss(logits, adversary, labels, mask, layout: TaskLayout, cfg: MtkConfig, *,
                    weight: float | None = None, memory: GroupMemory | None = None):
    """The decoupling term of a batch over its rows without a true key (see the module
    docstring), weighted by ``weight`` (default ``cfg.decoupling``; 0 until the gate has formed:
    the ``uniform`` adversary still learns, the network is not pushed); with the ``uniform`` target
    also the adversary's own loss. ``memory``: the ``secured`` term's :class:`GroupMemory`
    (``None``: means from the batch alone)."""
    import torch
    import torch.nn.functional as F

    weight = cfg.decoupling if weight is None else weight
    plain = mask == 0
    if plain.sum() < 2 and memory is None:   # nothing to decouple; the adversary still joins the graph (DDP)
        return sum(w.sum() for w in adversary[0]) * 0 if adversary is not None else logits[0].new_zeros(())
    rows = labels[plain]
    if cfg.decoupling_target in CELL_TERMS:
        seen = torch.cat([logits[i][plain] for i in layout.unsecured_index], dim=1)
        term = CELL_TERMS[cfg.decoupling_target]
        return weight * term(seen, cell_codes(rows, layout), rows, layout, memory)
    loss = logits[0].new_zeros(())
    for learn, confuse, s in zip(*adversary, layout.secured_index):
        loss = loss + F.cross_entropy(learn[plain], rows[:, s])
        loss = loss - weight * F.log_softmax(confuse[plain], dim=1).mean(dim=1).mean()
    return loss
