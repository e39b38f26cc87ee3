"""MTK decoupling: keep the unsecured heads' un-keyed outputs from telling more about a secured
task than the unsecured tasks' true answers do.

Rows without a true key (un-keyed, decoy and gate-hardening rows) fall into *cells*: the rows
with the same true labels of every unsecured task. What the unsecured answers reveal about a
secured task through the cell is irreducible (no model answering the unsecured tasks correctly
can hide it); what the outputs vary *within* a cell (confidences, near-misses) is the excess a
probe reads on top. Three terms, weighted by λ (``decoupling``), chosen by
``decoupling_target``:

* ``secured`` (the default): λ times the share of the within-cell spread of the unsecured heads'
  logits that the secured labels explain (a Fisher ratio: how far each (cell, secured label)
  group's mean lies from its cell's mean, which is what a linear probe reads inside a cell).
  Its gradient pushes each row against its group's offset, pulling the secured classes' means
  inside each cell together while leaving the rest of the within-cell spread (digit-independent
  style) alone, so it fights neither the unsecured tasks nor the gate. The means come from a
  :class:`SecuredMemory` over the last ``decoupling_memory`` batches of every worker: one batch
  holds too few rows per group. Measured (README "MTK: what we measured").
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
"""
from __future__ import annotations

from raypriv.errors import ConfigError
from raypriv.mtk.config import MtkConfig, TaskLayout


#: The decoupling targets that train an adversary beside the network.
ADVERSARY_TARGETS = ("conditional", "uniform")


def uses_adversary(cfg: MtkConfig) -> bool:
    """Whether the decoupling term needs the adversary module (``conditional`` and ``uniform``)."""
    return cfg.decoupling > 0 and cfg.decoupling_target in ADVERSARY_TARGETS


def build_adversary(layout: TaskLayout, *, conditional: bool):
    """The decoupling adversary: per secured task, a linear classifier of the secured label from
    the un-keyed rows' unsecured logits (standardized over the batch's rows without a key, with
    the statistics held fixed: the network cannot beat it by shrinking or inflating its logits),
    with one weight matrix and bias *per cell* when ``conditional``: it reads the leakage
    inside each cell, and its bias alone gives the cell's prior for free. Its
    :meth:`forward` returns, per secured task, its logits on detached features (its own loss:
    learn ``y_s``), its logits through frozen weights (the network's loss: answer the target
    distribution) and the target: the cell's prior ``p(y_s | cell)`` from :meth:`set_prior`
    (``conditional``), else uniform. Weights start at zero, so the network is pushed only as
    far as the adversary has learned to read it.

    >>> import torch
    >>> from raypriv.mtk.config import TaskLayout
    >>> layout = TaskLayout(("digit", "parity"), (10, 2), ("digit",))
    >>> adversary = build_adversary(layout, conditional=True)
    >>> adversary.set_prior(torch.tensor([[0, 0], [2, 0], [1, 1]]))
    >>> adversary.priors[0][1, :4].tolist()         # the odd cell: digit 1 only
    [0.0, 1.0, 0.0, 0.0]
    """
    import math

    import torch
    import torch.nn as nn

    cells = math.prod(layout.num_classes[t] for t in layout.unsecured_index) if conditional else 1
    dim = sum(layout.num_classes[t] for t in layout.unsecured_index)
    size = cells * dim * sum(layout.num_classes[s] for s in layout.secured_index)
    if size > MAX_ADVERSARY:
        raise ConfigError("decoupling_target", f"'conditional' needs {size:,} adversary weights for these tasks "
                                               f"(the unsecured tasks have {cells:,} label combinations), over "
                                               f"{MAX_ADVERSARY:,}: use 'cell' or 'uniform'")

    class Adversary(nn.Module):
        def __init__(self):
            super().__init__()
            classes = [layout.num_classes[s] for s in layout.secured_index]
            self.weight = nn.ParameterList(nn.Parameter(torch.zeros(cells, k, dim)) for k in classes)
            self.bias = nn.ParameterList(nn.Parameter(torch.zeros(cells, k)) for k in classes)
            for j, k in enumerate(classes):
                self.register_buffer(f"prior{j}", torch.full((cells, k), 1.0 / k))

        @property
        def priors(self) -> list:
            return [getattr(self, f"prior{j}") for j in range(len(self.weight))]

        def set_prior(self, labels) -> None:
            """The targets ``p(y_s | cell)``: the share of each secured class among the training
            rows' true labels (``(N, T)``, head order) in each cell (uniform in a cell without
            rows, and everywhere without ``conditional``)."""
            if not conditional:
                return
            codes = cell_codes(labels, layout)
            for prior, s in zip(self.priors, layout.secured_index):
                counts = torch.zeros_like(prior).index_put_((codes, labels[:, s]), torch.ones(len(codes)),
                                                            accumulate=True)
                total = counts.sum(dim=1, keepdim=True)
                prior.copy_(torch.where(total > 0, counts / total.clamp_min(1), 1.0 / prior.shape[1]))

        def forward(self, seen, labels):
            """``seen``: the unsecured logits of the rows without a key (``(B, dim)``, B ≥ 2);
            ``labels`` their true labels. ``[(learn, confuse, target, y_s)]`` per secured task."""
            z = (seen - seen.mean(dim=0).detach()) / seen.std(dim=0).detach().clamp_min(1e-3)
            cell = cell_codes(labels, layout) if conditional else torch.zeros_like(labels[:, 0])
            out = []
            for weight, bias, prior, s in zip(self.weight, self.bias, self.priors, layout.secured_index):
                w, b = weight[cell], bias[cell]
                learn = torch.einsum("bkd,bd->bk", w, z.detach()) + b
                confuse = torch.einsum("bkd,bd->bk", w.detach(), z) + b.detach()
                out.append((learn, confuse, prior[cell], labels[:, s]))
            return out

    return Adversary()


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


#: The most weights the ``conditional`` adversary may have (cells × unsecured logits × secured
#: classes); beyond it, the unsecured tasks' label combinations are too many for cells.
MAX_ADVERSARY = 20_000_000

#: The most (cell, secured label) groups × logits the secured term keeps means of (float64:
#: 400 MB); beyond it, the unsecured tasks' label combinations are too many for cells.
MAX_MEMORY = 50_000_000


class SecuredMemory:
    """Moving sums over the last ``steps`` batches (exponentially decayed, added up across the
    Ray Train workers) of the un-keyed unsecured logits of every (cell, secured label) group, per
    secured task, and of their outer products: the group and cell means the ``secured`` term
    pulls together, and the pooled within-cell covariance ``S`` that weighs them.

    One batch holds too few rows per group for their means (``mnist5k-pairs``: 20 cells × 10
    digits against ~35 rows without a key per worker batch; measured: 5 % of the rows fell in
    groups of two or more), so the term takes the means from the memory and pushes every row of
    the batch: row ``i`` of group ``g`` in cell ``c`` moves against ``S⁻¹ (m_g − m_c)``, the
    gradient of the Mahalanobis separation ``(m_g − m_c)ᵀ S⁻¹ (m_g − m_c)`` through the row's
    share of its group's mean (``S`` held fixed). The term's *value* is the memory's
    ``Σ_g n_g (m_g − m_c)ᵀ S⁻¹ (m_g − m_c) / Σ_g n_g``: the linear discriminant's separation of
    the secured classes inside the cells, what a linear probe reads. Mahalanobis, not Euclidean:
    measured on ``mnist5k-tasks``, the Euclidean ratio ``Σ n_g ‖m_g − m_c‖² / Σ ‖z − m_c‖²`` left
    the digit readable at 77-80 % (irreducible 61 %), offsets along directions in which the
    logits barely vary inside a cell being cheap for it and plain to a probe. ``S`` (the spread
    inside the cells, the secured classes' own included: the value is at most the number of
    logits) is floored at one logit unit² per direction (its eigenvalues): bounded pushes while
    the logits are near-constant, early in training. Groups with fewer than two (decayed) rows, and cells with one group, push
    nothing.

    The memory is checkpointed with the trainee (a resumed run continues it) and never saved
    with the model.

    >>> import torch
    >>> layout = TaskLayout(("digit", "parity"), (10, 2), ("digit",))
    >>> memory = SecuredMemory(layout, steps=10)
    >>> rows = torch.tensor([[2, 0], [4, 0], [2, 0], [4, 0], [3, 1], [5, 1], [3, 1], [5, 1]])  # (digit, parity)
    >>> z = torch.tensor([[2.0, 0.0], [0.0, 2.0]] * 4)      # parity logits: digits 2 and 3 high on the first
    >>> round(float(memory.term(z, cell_codes(rows, layout), rows)), 3)    # the label explains it all
    1.0
    >>> memory = SecuredMemory(layout, steps=10)
    >>> rows[:, 0] = torch.tensor([2, 2, 4, 4, 3, 3, 5, 5])                    # style only: the same in every group
    >>> round(float(memory.term(z, cell_codes(rows, layout), rows)), 3)
    0.0
    """

    def __init__(self, layout: TaskLayout, *, steps: int):
        import math

        import torch

        self.cells = math.prod(layout.num_classes[t] for t in layout.unsecured_index)
        self.classes = max(layout.num_classes[s] for s in layout.secured_index)
        self.dim = sum(layout.num_classes[t] for t in layout.unsecured_index)
        self.secured = layout.secured_index
        size = self.cells * (len(self.secured) * self.classes * (self.dim + 1) + self.dim * self.dim)
        if size > MAX_MEMORY:
            raise ConfigError("decoupling_target", f"'secured' keeps {size:,} sums for these tasks (the unsecured "
                                                   f"tasks have {self.cells:,} label combinations), over "
                                                   f"{MAX_MEMORY:,}: use 'cell' or 'uniform'")
        self.decay = 1.0 - 1.0 / steps
        shape = (len(self.secured), self.cells, self.classes)
        self.sums = torch.zeros(*shape, self.dim, dtype=torch.float64)
        self.counts = torch.zeros(shape, dtype=torch.float64)
        self.outer = torch.zeros(self.cells, self.dim, self.dim, dtype=torch.float64)

    def state_dict(self) -> dict:
        return {"sums": self.sums, "counts": self.counts, "outer": self.outer}

    def load_state_dict(self, state: dict) -> None:
        for name in ("sums", "counts", "outer"):
            if name not in state:
                raise ValueError(f"the secured decoupling memory's state lacks {name!r} (saved by another version?)")
            setattr(self, name, state[name].to(self.sums.device))

    def add(self, seen, codes, rows) -> None:
        """Decay the sums and add a batch's rows (``seen``: ``(B, dim)`` unsecured logits, detached;
        summed over the workers when several train)."""
        import torch
        import torch.distributed as dist

        seen = seen.detach().to(torch.float64)
        device = seen.device
        if self.sums.device != device:
            self.load_state_dict({k: v.to(device) for k, v in self.state_dict().items()})
        n, k = len(self.secured), self.classes
        sums = torch.zeros(n, self.cells * k, self.dim, dtype=torch.float64, device=device)
        counts = torch.zeros(n, self.cells * k, dtype=torch.float64, device=device)
        outer = torch.zeros(self.cells, self.dim, self.dim, dtype=torch.float64, device=device)
        outer.index_add_(0, codes, seen.unsqueeze(2) * seen.unsqueeze(1))
        ones = torch.ones(len(seen), dtype=torch.float64, device=device)
        for j, s in enumerate(self.secured):
            flat = codes * k + rows[:, s]
            sums[j].index_add_(0, flat, seen)
            counts[j].index_add_(0, flat, ones)
        batch = torch.cat([sums.flatten(), counts.flatten(), outer.flatten()])
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            dist.all_reduce(batch)
        sums, counts, outer = batch.split([sums.numel(), counts.numel(), outer.numel()])
        self.sums = self.sums * self.decay + sums.view_as(self.sums)
        self.counts = self.counts * self.decay + counts.view_as(self.counts)
        self.outer = self.outer * self.decay + outer.view_as(self.outer)

    def offsets(self, j: int):
        """For secured task ``j``: each group's ``S⁻¹ (m_g − m_c)`` (``(cells, classes, dim)``; 0 for
        groups under two rows) and the separation (see the class)."""
        import torch

        counts = self.counts[j]
        cell_counts = counts.sum(dim=1)
        cell_means = self.sums[j].sum(dim=1) / cell_counts.clamp_min(1e-12).unsqueeze(1)
        group_means = self.sums[j] / counts.clamp_min(1e-12).unsqueeze(2)
        offset = (group_means - cell_means.unsqueeze(1)) * (counts >= 2).unsqueeze(2)
        rows = cell_counts.sum().clamp_min(1e-12)
        within = self.outer.sum(dim=0) - torch.einsum("c,cd,ce->de", cell_counts, cell_means, cell_means)
        values, vectors = torch.linalg.eigh(within / rows)
        precision = vectors @ torch.diag(1.0 / values.clamp_min(1.0)) @ vectors.T
        pushed = offset @ precision
        return pushed, (counts * (pushed * offset).sum(dim=2)).sum() / rows

    def term(self, seen, codes, rows):
        """Add the batch, then the mean over the secured tasks of the memory's separation, with the
        gradient that pushes each row of ``seen`` against its group's offset (see the class)."""
        self.add(seen, codes, rows)
        terms = []
        for j, s in enumerate(self.secured):
            pushed, value = self.offsets(j)
            push = 2 * (seen * pushed[codes, rows[:, s]].to(seen.dtype)).sum() / max(1, len(seen))
            terms.append(value.to(seen.dtype) + push - push.detach())
        return sum(terms) / len(terms)


def _means(seen, index):
    import torch

    sums = torch.zeros(int(index.max()) + 1, seen.shape[1], dtype=seen.dtype, device=seen.device)
    counts = torch.bincount(index, minlength=len(sums)).clamp_min(1).unsqueeze(1).to(seen.dtype)
    return sums.index_add(0, index, seen) / counts


def decoupling_loss(logits, adversary, labels, mask, layout: TaskLayout, cfg: MtkConfig, *,
                    memory: SecuredMemory | None = None, weight: float | None = None):
    """The decoupling term of a batch over its rows without a true key (see the module
    docstring), weighted by ``weight`` (default ``cfg.decoupling``; 0 during the warm-up: the
    adversary and the memory still learn, the network is not pushed). The adversary targets take ``adversary``, what the trainee's adversary returned
    for the batch, and add its own loss; the ``secured`` target takes (and adds the batch to)
    ``memory``."""
    import torch
    import torch.nn.functional as F

    weight = cfg.decoupling if weight is None else weight
    if cfg.decoupling_target in ADVERSARY_TARGETS:
        return adversary_loss(adversary, weight)
    plain = mask == 0
    if plain.sum() < 2 and cfg.decoupling_target == "cell":
        return logits[0].new_zeros(())      # nothing to decouple (the secured memory goes on: its
    rows = labels[plain]                    # all-reduce needs every worker)
    seen = torch.cat([logits[i][plain] for i in layout.unsecured_index], dim=1)
    codes = cell_codes(rows, layout)
    if cfg.decoupling_target == "cell":
        return weight * cell_spread(seen, codes)
    if memory is None:
        raise ValueError("the 'secured' decoupling term needs its SecuredMemory")
    return weight * memory.term(seen, codes, rows)


def adversary_loss(adversary, decoupling: float):
    """The adversary's loss (cross-entropy of the secured labels, on detached features: it trains
    the adversary alone) plus λ times the network's: the KL divergence from the target
    distribution to the adversary's answer through its frozen weights (bounded below, unlike a
    reversed gradient). A batch without two rows lacking a key adds 0 (the adversary still
    joins the graph, for DDP)."""
    import torch
    import torch.nn.functional as F

    loss = 0
    for learn, confuse, target, y in adversary:
        if len(learn) < 2:
            loss = loss + (learn.sum() + confuse.sum()) * 0
            continue
        kl = (torch.xlogy(target, target) - target * F.log_softmax(confuse, dim=1)).sum(dim=1).mean()
        loss = loss + F.cross_entropy(learn, y) + decoupling * kl
    return loss
