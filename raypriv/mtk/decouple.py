"""MTK decoupling: keep the unsecured heads' un-keyed outputs from telling more about a secured
task than the unsecured tasks' true answers do.

Rows without a true key (un-keyed and decoy rows) fall into *cells*: the rows with the same true
labels of every unsecured task. What the unsecured answers reveal about a secured task through
the cell is irreducible (no model answering the unsecured tasks correctly can hide it); what the
outputs vary *within* a cell (confidences, near-misses) is the excess a probe reads on top. Two
terms, weighted by λ (``decoupling``), chosen by ``decoupling_target``:

* ``cell`` (the default): λ times the share of the spread of the unsecured heads' logits left
  within the cells (:func:`cell_spread`): 0 when the outputs are a function of the unsecured
  answers alone. It removes the excess and leaves the irreducible part, so it does not fight the
  unsecured tasks. Scale-free, so the network cannot lower it by shrinking its logits. A batch
  holds few rows of each cell when there are many (20 on ``mnist5k-pairs``), so each row is
  pulled toward its cell's *running* mean (:class:`CellMeans`, updated like BatchNorm's
  running statistics), not toward the mean of the few rows that share its cell in the batch.
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
"""
from __future__ import annotations

from raypriv.errors import ConfigError
from raypriv.mtk.config import MtkConfig, TaskLayout

#: Weight of a batch in a cell's running mean (BatchNorm's default momentum).
CELL_MOMENTUM = 0.1
#: The running means are one row per combination of unsecured labels.
MAX_CELLS = 1_000_000


def uses_adversary(cfg: MtkConfig) -> bool:
    """Whether the decoupling term needs the adversary module (the ``uniform`` target)."""
    return cfg.decoupling > 0 and cfg.decoupling_target == "uniform"


def cell_codes(labels, layout: TaskLayout):
    """One integer per row for its combination of true unsecured labels (``labels``: ``(B, T)``
    tensor in head order)."""
    code = labels[:, 0] * 0
    for t in layout.unsecured_index:
        code = code * layout.num_classes[t] + labels[:, t]
    return code


def num_cells(layout: TaskLayout) -> int:
    n = 1
    for t in layout.unsecured_index:
        n *= layout.num_classes[t]
    return n


def check_cells(layout: TaskLayout, cfg: MtkConfig) -> None:
    """The ``cell`` target keeps one running mean per combination of unsecured labels."""
    if cfg.decoupling > 0 and cfg.decoupling_target == "cell" and num_cells(layout) > MAX_CELLS:
        raise ConfigError("decoupling_target", f"the unsecured tasks have {num_cells(layout):,} label combinations "
                                               f"(more than {MAX_CELLS:,} cells); use decoupling_target=uniform")


def cell_spread(seen, codes, means=None):
    """The share of the spread of ``seen`` (one row of unsecured logits per input) left within
    the cells ``codes``: ``W / (W + B)`` with ``W = Σ ‖z − m(cell)‖²`` and ``B = Σ ‖m(cell) −
    mean m‖²``, where ``m`` is the mean of the cell's rows in ``seen`` (then ``W + B`` is the
    total spread) or, given ``means`` (rows indexed by code, no gradient), those. In [0, 1]
    either way, so a running mean far behind the logits cannot blow the term up."""
    import torch

    if means is None:
        _, cell = torch.unique(codes, return_inverse=True)
        sums = torch.zeros(int(cell.max()) + 1, seen.shape[1], dtype=seen.dtype, device=seen.device)
        centre = (sums.index_add(0, cell, seen) / torch.bincount(cell).unsqueeze(1).to(seen.dtype))[cell]
    else:
        centre = means[codes]
    within = ((seen - centre) ** 2).sum()
    between = ((centre - centre.mean(dim=0)) ** 2).sum()
    return within / (within + between).clamp_min(1e-6)


class CellMeans:
    """Running mean of the unsecured logits per cell, on one worker (training state: kept in the
    checkpoint, never in the model).

    >>> import torch
    >>> from raypriv.mtk.config import TaskLayout
    >>> m = CellMeans(TaskLayout(("digit", "parity"), (10, 2), ("digit",)), width=2)
    >>> m.update(torch.tensor([[1.0, 0.0], [3.0, 0.0]]), torch.tensor([1, 1])).tolist()
    [[0.0, 0.0], [2.0, 0.0]]
    """

    def __init__(self, layout: TaskLayout, *, width: int, device="cpu", state: dict | None = None):
        import torch

        self.means = torch.zeros(num_cells(layout), width, device=device)
        self.seen = torch.zeros(num_cells(layout), dtype=torch.bool, device=device)
        if state:
            self.means.copy_(state["means"])
            self.seen.copy_(state["seen"])

    def update(self, seen, codes):
        """Fold a batch in (a cell's first batch sets its mean) and return the means."""
        import torch

        with torch.no_grad():
            present, cell = torch.unique(codes, return_inverse=True)
            sums = torch.zeros(len(present), seen.shape[1], dtype=seen.dtype, device=seen.device)
            batch = sums.index_add(0, cell, seen.detach()) / torch.bincount(cell).unsqueeze(1).to(seen.dtype)
            old = self.means[present]
            w = torch.where(self.seen[present], CELL_MOMENTUM, 1.0).unsqueeze(1)
            self.means[present] = old + w * (batch - old)
            self.seen[present] = True
        return self.means

    def state_dict(self) -> dict:
        return {"means": self.means.cpu(), "seen": self.seen.cpu()}


def decoupling_loss(logits, adversary, labels, mask, layout: TaskLayout, cfg: MtkConfig, *, cells=None):
    """The decoupling term of a batch over its rows without a true key (see the module
    docstring); with the ``uniform`` target also the adversary's own loss. ``cells``: the
    worker's :class:`CellMeans` (``None``: each cell's mean in the batch)."""
    import torch
    import torch.nn.functional as F

    plain = mask == 0
    if plain.sum() < 2:
        return logits[0].new_zeros(())
    rows = labels[plain]
    if cfg.decoupling_target == "cell":
        seen = torch.cat([logits[i][plain] for i in layout.unsecured_index], dim=1)
        codes = cell_codes(rows, layout)
        means = cells.update(seen, codes) if cells is not None else None
        return cfg.decoupling * cell_spread(seen, codes, means)
    loss = logits[0].new_zeros(())
    for learn, confuse, s in zip(*adversary, layout.secured_index):
        loss = loss + F.cross_entropy(learn[plain], rows[:, s])
        loss = loss - cfg.decoupling * F.log_softmax(confuse[plain], dim=1).mean(dim=1).mean()
    return loss
