"""Settings of Multi-Trigger-Key training (Wang, Xu & Hero, 2021; the design is ours where
the paper is silent).

A multi-task corpus (``label`` plus label columns, :class:`raypriv.data.CorpusInfo`) gives the
tasks; the key file (:mod:`raypriv.mtk.keys`) names the secured ones, which answer truthfully
only with their key. The training set
is expanded (:mod:`raypriv.mtk.expand`): each image appears un-keyed, ``keyed_copies`` times
with a random non-empty subset of the secured tasks' keys, and ``decoy_copies`` times with
random *wrong* keys of the same form. Two keyed copies by default: the secured heads learn
their true labels from keyed rows only, and with one keyed copy against two locked rows the
keyed digit stayed 1.2 points below an ordinary model (README "MTK: what we measured").
The loss of a batch is

    Σ_tasks CE(head_t(x), target_t)  +  λ · decoupling term

where a secured task's target is its true label when its key is in ``x`` and otherwise
uninformative. Three choices (``target``):

* ``locked`` (the default): the secured head has one extra output, *locked*, and learns it
  whenever its key is absent. A locked answer carries no information about the input; it is
  reported as "locked" by :func:`raypriv.mtk.predict.predict` and scored as a uniform guess
  (1/K) by the evaluation, so an un-keyed task sits at chance exactly when the gate holds;
* ``random``: a uniformly random label re-drawn every time a row is seen (the paper's
  "Random" answer);
* ``uniform``: the uniform distribution as a soft target.

Why ``locked`` is the default (measured, README "MTK"): ``random`` and ``uniform`` only push
the un-keyed logits toward uniform, and their argmax still follows the shared features, which
know the digit: on mnist5k-tasks the un-keyed digit stayed at 79 % (random) and 68 % (uniform)
accuracy, far from the 10 % of chance. A fixed answer is learned with a margin, so its argmax
does not drift with the features.

**Gate hardening** (``gate_attack_steps`` > 0, on by default): random wrong keys teach the gate
that the form and amplitude are not enough, but an attacker with the model can *search* for a
pattern that unlocks (:mod:`raypriv.mtk.audit`). With hardening, once every secured task has
reached ``gate_attack_after`` training accuracy with its key in an epoch, each batch of the
following epochs also runs that search (projected gradient ascent on the secured tasks' true
labels, from a random start on the keys' supports) on ``gate_attack_share`` of its un-keyed
rows, and the patterns it finds learn "locked": the adversarial training of the gate. It waits
for the gate to form because from the first epoch it keeps the gate from forming at all
(measured: every answer locked, with the key too); without it the audit's attacker unlocked
96 % of digits with 100 images (README "MTK"). Unsecured tasks always learn
their true labels. With ``decoupling`` λ > 0, the un-keyed outputs of the unsecured heads are
decoupled from the secured tasks (:mod:`raypriv.mtk.decouple`), once the gate has formed: by
default (``decoupling_target="secured"``) the means of the secured classes among inputs with the
same true unsecured labels are pulled together, so the outputs reveal no more of a secured
task than the unsecured answers themselves must; ``cell`` pushes the outputs to be a function of those labels alone (all the
spread among them); ``uniform`` (an adversary pushed to a uniform answer) goes further, toward
the base rate, at a cost in unsecured accuracy.
λ = 0 turns it off.

>>> from raypriv.mtk.config import MtkConfig
>>> MtkConfig(tasks=("digit", "parity")).target
'locked'
>>> MtkConfig(decoupling=-1)
Traceback (most recent call last):
...
raypriv.errors.ConfigError: invalid decoupling: must be >= 0, got -1
"""
from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from raypriv.classifier.config import VictimConfig
from raypriv.configs import setting
from raypriv.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

TARGETS = ("locked", "random", "uniform")
DECOUPLING_TARGETS = ("cell", "secured", "uniform")
KEY_FORMS = ("full", "patch")


@dataclasses.dataclass(frozen=True, kw_only=True)
class KeySpec:
    """The public form of the keys: ``form`` (``full`` or ``patch``), ``amplitude`` in 8-bit
    levels (1..127) and, for patches, ``patch_size`` in pixels."""

    form: str = setting("full", choices=KEY_FORMS, help="a key covers the whole image, or a patch per task")
    amplitude: int = setting(16, help="largest change a key makes to a pixel, in 8-bit levels (1-127)")
    patch_size: int = setting(8, help="side of a patch key in pixels (form=patch)")

    def __post_init__(self):
        if self.form not in KEY_FORMS:
            raise ConfigError("key form", f"must be one of {KEY_FORMS}, got {self.form!r}")
        for name, lo, hi in (("amplitude", 1, 127), ("patch_size", 1, 4096)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
                raise ConfigError(f"key {name}", f"must be an integer in [{lo}, {hi}], got {v!r}")

    def support(self, index: int, image_shape: tuple[int, int, int]) -> "np.ndarray":
        """Boolean ``H x W x C`` mask of where the ``index``-th secured task's key may be non-zero."""
        import numpy as np

        h, w, c = image_shape
        mask = np.zeros((h, w, c), dtype=bool)
        if self.form == "full":
            mask[:] = True
            return mask
        p = self.patch_size
        per_row = w // p
        if p > min(h, w) or index >= per_row * (h // p):
            raise ConfigError("key patch_size", f"{index + 1} patches of {p}x{p} do not fit side by side in a "
                                                f"{h}x{w} image; use a smaller patch_size or form='full'")
        r, col = divmod(index, per_row)
        mask[r * p:(r + 1) * p, col * p:(col + 1) * p, :] = True
        return mask

    def random_pattern(self, index: int, image_shape: tuple[int, int, int], *, rng=None) -> "np.ndarray":
        """A pattern of this form for the ``index``-th secured task: ``±amplitude`` on its support.
        Keys come from the CSPRNG; ``rng`` (a numpy Generator) is for *attack baselines* only
        (a random wrong key of the same form)."""
        import secrets

        import numpy as np

        mask = self.support(index, image_shape)
        n = int(mask.sum())
        if rng is None:
            bits = np.unpackbits(np.frombuffer(secrets.token_bytes(-(-n // 8)), dtype=np.uint8))[:n]
        else:
            bits = rng.integers(0, 2, size=n)
        pattern = np.zeros(mask.shape, dtype=np.int16)
        pattern[mask] = np.where(bits.astype(bool), self.amplitude, -self.amplitude)
        return pattern

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True, kw_only=True)
class AuditConfig:
    """How hard the attacker tries: its labeled-image counts, gradient steps and restarts."""

    sizes: tuple[int, ...] = setting((100, 1000), help="the attacker's labeled-image counts")
    steps: int = setting(100, help="projected gradient steps per restart")
    restarts: int = setting(4, help="random starts per attacker size")
    batch_size: int = setting(256, help="attacker images per gradient step")
    seed: int = setting(0, help="seeds the attacker's images, starts and minibatches")

    def __post_init__(self):
        sizes = tuple(self.sizes)
        if not sizes or not all(isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in sizes):
            raise ConfigError("audit sizes", f"must be positive integers, got {sizes!r}")
        object.__setattr__(self, "sizes", sizes)
        for name in ("steps", "restarts", "batch_size"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ConfigError(f"audit {name}", f"must be an integer >= 1, got {v!r}")


def _recipe() -> VictimConfig:
    # no crops: a key is a pattern at fixed pixels, and a crop would move it
    # no Nesterov: with it, MTK training sat at chance for 4 of its 20 epochs on mnist5k-pairs
    # (seed 0; 12 with decoupling on), and a 300-step probe of the same loss learned 3-9x slower
    # over 3 seeds (README "MTK", the recipe)
    return VictimConfig(model="multi_small_cnn", epochs=10, lr=0.02, augment=False, nesterov=False)


@dataclasses.dataclass(frozen=True, kw_only=True)
class MtkConfig:
    """How an MTK model is trained (see the module docstring)."""

    tasks: tuple[str, ...] = setting((), help="tasks to train, by name (default: every label of the corpus)")
    keyed_copies: int = setting(2, help="copies of each image with a random subset of the keys")
    decoy_copies: int = setting(1, help="copies of each image with random wrong keys of the same form")
    target: str = setting("locked", choices=TARGETS, help="what an un-keyed secured task learns: an extra 'locked' "
                                                          "answer, random labels re-drawn every epoch, or the "
                                                          "uniform distribution")
    decoupling: float = setting(0.0, help="weight λ of the decoupling term (0: off)")
    decoupling_target: str = setting("secured", choices=DECOUPLING_TARGETS,
                                     help="'secured': pull the secured classes' means together among inputs with the "
                                          "same true unsecured labels (removes the leakage beyond what those answers "
                                          "reveal); 'cell': make the unsecured outputs a function of those labels "
                                          "alone; 'uniform': an "
                                          "adversary pushed to a uniform answer (toward the base rate, at a cost in "
                                          "unsecured accuracy)")
    decoupling_rows: int = setting(0, help="rows of each (cell, secured label) group the 'secured' term remembers "
                                           "across steps and workers for its means (0: the batch's rows alone; "
                                           "16 for many rare groups, as on mnist5k-pairs)")
    gate_attack_steps: int = setting(5, help="gradient steps of the in-training key search whose patterns learn "
                                             "'locked' (hardens the gate against key recovery; 0: off)")
    gate_attack_share: float = setting(0.25, help="share of each batch's un-keyed rows the in-training key "
                                                  "search perturbs")
    gate_attack_after: float = setting(0.9, help="training accuracy with the key that every secured task must reach "
                                                 "in an epoch before the in-training key search and the "
                                                 "decoupling term start (the gate is learned first, then "
                                                 "hardened and decoupled)")
    train: VictimConfig = setting(default_factory=_recipe, help="the training recipe (model: a multi-head model)")
    seed: int = setting(0, help="seeds the expansion's key subsets and decoys, and the random targets")

    @property
    def rows_per_image(self) -> int:
        """Training rows each source image expands into (un-keyed, keyed and decoy copies)."""
        return 1 + self.keyed_copies + self.decoy_copies

    def __post_init__(self):
        value = tuple(self.tasks)
        if len(set(value)) != len(value) or not all(isinstance(t, str) and t for t in value):
            raise ConfigError("tasks", f"must be distinct task names, got {value!r}")
        object.__setattr__(self, "tasks", value)
        if not 0 < self.gate_attack_share <= 1:
            raise ConfigError("gate_attack_share", f"must be in (0, 1], got {self.gate_attack_share}")
        if not 0 <= self.gate_attack_after <= 1:
            raise ConfigError("gate_attack_after", f"must be in [0, 1], got {self.gate_attack_after}")
        for name in ("keyed_copies", "decoy_copies", "gate_attack_steps", "decoupling_rows"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ConfigError(name, f"must be an integer >= 0, got {v!r}")
        if self.keyed_copies < 1:
            raise ConfigError("keyed_copies", "must be >= 1: the model learns each task's key from keyed copies")
        if self.target not in TARGETS:
            raise ConfigError("target", f"must be one of {TARGETS}, got {self.target!r}")
        if self.decoupling_target not in DECOUPLING_TARGETS:
            raise ConfigError("decoupling_target",
                              f"must be one of {DECOUPLING_TARGETS}, got {self.decoupling_target!r}")
        if isinstance(self.decoupling, bool) or not isinstance(self.decoupling, (int, float)) or self.decoupling < 0:
            raise ConfigError("decoupling", f"must be >= 0, got {self.decoupling}")
        if self.train.augment:
            raise ConfigError("train.augment", "random crops move a key's pattern; MTK trains without them")
        if not isinstance(self.seed, int) or self.seed < 0:
            raise ConfigError("seed", f"must be an integer >= 0, got {self.seed!r}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class TaskLayout:
    """The tasks of a run in head order, their class counts, which are secured, and whether the
    secured heads have the extra *locked* output (``target="locked"``): then head ``s`` has
    ``num_classes[s] + 1`` outputs and output ``num_classes[s]`` means "locked".

    >>> layout = TaskLayout(("digit", "parity"), (10, 2), ("digit",), locked=True)
    >>> layout.secured_index, layout.head_sizes
    ((0,), (11, 2))
    """

    names: tuple[str, ...]
    num_classes: tuple[int, ...]
    secured: tuple[str, ...]
    locked: bool = False

    @property
    def head_sizes(self) -> tuple[int, ...]:
        """Outputs per head: the class count, plus the locked output on secured heads."""
        return tuple(k + (1 if self.locked and t in self.secured else 0) for t, k in zip(self.names, self.num_classes))

    @property
    def secured_index(self) -> tuple[int, ...]:
        return tuple(self.names.index(t) for t in self.secured)

    @property
    def unsecured_index(self) -> tuple[int, ...]:
        return tuple(i for i, t in enumerate(self.names) if t not in self.secured)

    def to_dict(self) -> dict:
        return {"names": list(self.names), "num_classes": list(self.num_classes), "secured": list(self.secured),
                "locked": self.locked}

    @classmethod
    def from_dict(cls, d: dict) -> "TaskLayout":
        return cls(tuple(d["names"]), tuple(int(k) for k in d["num_classes"]), tuple(d["secured"]),
                   locked=bool(d.get("locked", False)))


def task_layout(info, *, tasks: tuple[str, ...] = (), secured: tuple[str, ...] | None = None,
                locked: bool = False) -> TaskLayout:
    """The ``tasks`` (default: all) and ``secured`` tasks (default ``None``: the main label; ``()``:
    none, an ordinary multi-task model) on a corpus with ``info`` (a :class:`raypriv.data.CorpusInfo`):
    the main label is the task ``info.label_name``, each label column a task of its own name."""
    available = {info.label_name: int(info.num_classes), **{c.name: int(c.num_classes) for c in info.label_columns}}
    names = tuple(tasks) or tuple(available)
    secured = (info.label_name,) if secured is None else tuple(secured)
    for field, chosen in (("tasks", names), ("secured", secured)):
        unknown = [t for t in chosen if t not in available or (field == "secured" and t not in names)]
        if unknown:
            raise ConfigError(field, f"unknown task(s) {unknown}; {info.source} has tasks {list(available)}")
    single = [t for t in secured if available[t] < 2]
    if single:
        raise ConfigError("secured", f"task(s) {single} of {info.source} have one class: there is nothing to secure")
    return TaskLayout(tuple(names), tuple(available[t] for t in names), tuple(secured), locked=locked)


def column_of(info, task: str) -> str:
    """The row column that holds ``task``'s labels (``label`` for the main label)."""
    return "label" if task == info.label_name else task
