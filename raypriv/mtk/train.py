"""``raypriv mtk train``: a multi-task model whose secured tasks answer only with their key,
trained with the core Ray Train launcher (several DDP workers; gloo on CPU).

The driver checks the key file against the tasks, expands the training set
(:mod:`raypriv.mtk.expand`, Ray Data), and runs :func:`raypriv.mtk.worker.train_loop` on every worker over its
shard (split by a hash of the expanded row ids). Each epoch every worker checkpoints (rank 0
writes) the network, the adversary and the optimizer, so an interrupted run re-submitted with
the same output resumes from the last finished epoch (``OUTPUT.checkpoints``, removed when the
model is written). A checkpoint carries the run's fingerprint (:func:`run_fingerprint`: the
settings, the workers, the keyed fingerprint of the data and a digest of the keys); a re-run
with other settings, data or keys is refused (or, with ``overwrite``, discarded) instead of
silently continuing the old weights.

Output directory (:class:`MtkModel`)::

    model.pt        the network's state_dict (shared backbone and one head per task) …
    manifest.json   … then the manifest, which marks it finished: the tasks and which are
                    secured, the model's registry name and arguments, the training settings,
                    the keys' public form and a salted HMAC of each key (so that a key file of
                    another model is refused), the keyed input fingerprint, the per-epoch
                    history. No key, no pattern, no key file path.
"""
from __future__ import annotations

import dataclasses
import os
import time
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from raypriv.errors import ArtifactError
from raypriv import storage
from raypriv.mtk.config import MtkConfig, TaskLayout, column_of, task_layout
from raypriv.mtk.expand import DECOY, KEY_MASK

if TYPE_CHECKING:  # pragma: no cover
    from raypriv.data.corpus import Corpus
    from raypriv.mtk.keys import KeySet
    from raypriv.runtime import ResourceSpec

METHOD = "mtk"
WEIGHTS_NAME = "model.pt"
#: The Ray Train run's name inside the checkpoint directory (fixed, so that a re-run resumes it).
RUN_NAME = "mtk-train"


@dataclasses.dataclass
class MtkModel:
    """A trained MTK network: its payload (registry name, kwargs, weights), task layout and manifest."""

    payload: Any
    layout: TaskLayout
    manifest: dict
    path: str | None = None

    def build(self, device="cpu"):
        """The network in eval mode; ``net(x)`` returns one logits tensor per task (``layout.names``)."""
        return self.payload.build(device).eval()

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(int(v) for v in self.manifest["image_shape"])

    def load_keys(self, path: str) -> "KeySet":
        """The key file at ``path``, refused unless it holds exactly this model's keys."""
        from raypriv.mtk.keys import KeyFileError, KeySet

        if not self.layout.secured:
            raise KeyFileError(f"{self.path or 'this model'} secures no task (an ordinary multi-task model): "
                               "it takes no key file")
        return KeySet.load(path, digests=self.manifest["key_digests"], salt=self.manifest["key_salt"])

    def check_keys(self, keys: "KeySet") -> None:
        """Raise :class:`~raypriv.mtk.keys.KeyFileError` unless ``keys`` are this model's keys."""
        from raypriv.mtk.keys import check_digests

        check_digests(keys, digests=self.manifest["key_digests"], salt=self.manifest["key_salt"],
                      path=f"the keys given to {self.path or 'this model'}")

    def check_corpus(self, corpus: "Corpus", *, labels: bool = True) -> None:
        """Raise a clear error unless ``corpus`` has this model's image shape and (``labels``) every
        task of the model with its class count: before any work, not deep inside a Ray actor."""
        from raypriv.data.validate import check_same_shape
        from raypriv.errors import ConfigError

        info = corpus.info
        if tuple(info.image_shape) != self.image_shape:
            check_same_shape(info.source, info.image_shape, "the model's images", self.image_shape)
        if not labels:
            return
        found = task_layout(info, tasks=self.layout.names, secured=())
        wrong = [f"{t}: {k} classes, the model's {m}" for t, k, m in zip(self.layout.names, found.num_classes,
                                                                           self.layout.num_classes) if k != m]
        if wrong:
            raise ConfigError("tasks", f"{info.source} does not match the model: {'; '.join(wrong)}")

    def save(self, output: str, *, overwrite: bool = False) -> str:
        import torch

        from raypriv.data.writer import AtomicDir
        from raypriv.files import local_dir
        from raypriv.manifest import write_manifest

        out = local_dir(output)
        with AtomicDir(out, overwrite=overwrite) as tmp:
            torch.save(dict(self.payload.state), os.path.join(tmp, WEIGHTS_NAME))
            write_manifest(tmp, self.manifest)
        self.path = out
        return out


def load_model(path: str) -> MtkModel:
    """Read a finished MTK model directory (its manifest's method and version are checked)."""
    import torch

    from raypriv.files import local_dir
    from raypriv.manifest import read_manifest
    from raypriv.models import ModelPayload

    path = local_dir(path, what="model")
    manifest = read_manifest(path, method=METHOD, what="MTK model")
    state = torch.load(os.path.join(path, WEIGHTS_NAME), map_location="cpu", weights_only=True)
    payload = ModelPayload(model=manifest["model"], model_kwargs=manifest["model_kwargs"], state=state)
    return MtkModel(payload=payload, layout=TaskLayout.from_dict(manifest["tasks"]), manifest=manifest, path=path)


def default_checkpoint_dir(output: str) -> str:
    """Where a run's checkpoints go unless told: ``OUTPUT.checkpoints``, beside the model."""
    return os.path.abspath(output).rstrip("/") + ".checkpoints"


def check_keys(keys: "KeySet", layout: TaskLayout, image_shape) -> None:
    """The key set must hold one key per secured task, in order, for images of this shape."""
    from raypriv.mtk.keys import KeyFileError

    if tuple(keys.tasks) != tuple(layout.secured):
        raise KeyFileError(f"the key file holds keys for {list(keys.tasks)}; this run secures "
                           f"{list(layout.secured)} (generate keys with `raypriv mtk keys --secured "
                           f"{','.join(layout.secured)}`)")
    if tuple(keys.image_shape) != tuple(int(v) for v in image_shape):
        raise KeyFileError(f"the keys are for {keys.image_shape} images; the corpus has {tuple(image_shape)}")


def model_kwargs(info, layout: TaskLayout) -> dict:
    from raypriv.models import ModelPayload

    h, w, _ = (int(v) for v in info.image_shape)
    return {**ModelPayload.image_kwargs(info.image_shape, layout.head_sizes), "image_width": w, "log_probs": True}


def train_mtk(train: "Corpus", keys: "KeySet | None", *, config: MtkConfig, output: str,
              resources: "ResourceSpec | None" = None, overwrite: bool = False, max_failures: int = 0,
              checkpoints: str | None = None, progress: Callable[[str], None] = print,
              epoch_hook: Callable | None = None) -> MtkModel:
    """Train an MTK model on ``train`` with ``keys`` and save it to ``output`` (see the module docstring).

    ``keys=None`` trains the ordinary multi-task model of the same recipe (no task secured, no
    expansion): the baseline MTK's keyed and unsecured accuracy and its leakage are compared with.
    ``checkpoints`` (a directory or a pyarrow URI; default ``OUTPUT.checkpoints``) is where Ray
    Train keeps the run's checkpoints, removed once the model is saved. ``epoch_hook``, a
    picklable ``hook(*, epoch, rank)``, runs on every worker after each epoch's checkpoint: a
    place to watch or interrupt training (the resume test raises there)."""
    from raypriv.manifest import build_manifest, is_finished
    from raypriv.models import ModelPayload, build_model
    from raypriv.mtk.expand import expand_corpus
    from raypriv.mtk.keys import KeySet, KeySpec, key_digests, new_salt
    from raypriv.runtime import ResourceSpec
    from raypriv.runtime.execute import run
    from raypriv.runtime.train import fit, load_checkpoint

    resources = resources or ResourceSpec.auto()
    if is_finished(output) and not overwrite:
        raise ArtifactError(f"{output} already holds a finished MTK model; pass overwrite=True (--overwrite)")
    plain = keys is None
    layout = task_layout(train.info, tasks=config.tasks, secured=() if plain else keys.tasks,
                         locked=not plain and config.target == "locked")
    if plain:
        keys = KeySet({}, spec=KeySpec(), image_shape=train.info.image_shape)
    else:
        check_keys(keys, layout, train.info.image_shape)
    kwargs = model_kwargs(train.info, layout)
    build_model(config.train.model, **kwargs)      # an unknown or single-head model fails here, before any work
    columns = tuple(column_of(train.info, t) for t in layout.names)
    secured = "no task secured (the ordinary multi-task baseline)" if plain else \
        f"secured {', '.join(layout.secured)} ({keys.spec.form} keys, amplitude {keys.spec.amplitude})"
    progress(f"training MTK ({config.train.model}) on {train.info.num_rows:,} images of {train.info.source}: tasks "
             f"{', '.join(layout.names)}; {secured}; decoupling λ = {config.decoupling:g}; {resources.workers} worker(s)")
    t0 = time.time()
    expanded = expand_corpus(train, keys, keyed_copies=0 if plain else config.keyed_copies,
                             decoy_copies=0 if plain else config.decoy_copies, seed=config.seed)
    expanded = run(expanded.select_columns(["id", "image", *columns, KEY_MASK, DECOY]), lambda d: d.materialize())
    rows = expanded.count()
    support = np.zeros(train.info.image_shape, dtype=bool)
    for i in range(len(keys.tasks)):
        support |= keys.spec.support(i, train.info.image_shape)
    loop_cfg = {"mtk": config.to_dict(), "layout": layout.to_dict(), "model_kwargs": kwargs,
                "key_support": support.astype(np.uint8).tolist(), "key_amplitude": keys.spec.amplitude,
                "columns": list(columns), "rows_per_epoch": max(1, rows // resources.workers),
                "batch_per_worker": max(1, config.train.batch_size // resources.workers)}
    loop_cfg["run"] = run_fingerprint(loop_cfg, workers=resources.workers, data=train.keyed_fingerprint(),
                                      keys=keys)
    loop_cfg["epoch_hook"] = epoch_hook
    from raypriv.mtk.worker import train_loop

    given, checkpoints = checkpoints, checkpoints or default_checkpoint_dir(output)
    interrupted_run(checkpoints, loop_cfg["run"], overwrite=overwrite, progress=progress)
    result = fit(train_loop, config=loop_cfg, resources=resources, storage_path=checkpoints,
                 name=RUN_NAME, datasets={"train": expanded}, max_failures=max_failures, what="MTK training")
    state = load_checkpoint(result, weights_only=False)
    history = state["history"]
    for h in history:
        accs = ", ".join(f"{t} {h['acc'][t]:.1%}" for t in layout.names)
        progress(f"  epoch {h['epoch']}: loss {h['loss']:.3f}; training accuracy (true targets) {accs}")
    for line in unformed_gates(history, layout):
        progress(line)
    salt = new_salt()
    manifest = build_manifest(
        method=METHOD, params=config, seed=config.seed, input_fingerprint=train.keyed_fingerprint(),
        extra={"source": train.info.source, "tasks": layout.to_dict(), "model": config.train.model,
               "model_kwargs": kwargs, "image_shape": list(train.info.image_shape),
               "class_names": {t: _class_names(train.info, t) for t in layout.names},
               "key_spec": None if plain else keys.spec.to_dict(), "key_salt": salt,
               "key_digests": key_digests(keys, salt=salt),
               "training_rows": rows, "history": history, "wall_time_s": round(time.time() - t0, 1)})
    payload = ModelPayload(model=config.train.model, model_kwargs=kwargs, state=state["model"])
    model = MtkModel(payload=payload, layout=layout, manifest=manifest)
    model.save(output, overwrite=overwrite)
    storage.remove_tree(storage.join(checkpoints, RUN_NAME) if given else checkpoints)    # a given location: our run only
    progress(f"wrote the MTK model to {model.path} (keys are not in it: keep the key file apart)")
    return model


def interrupted_run(checkpoints: str, run: str, *, overwrite: bool, progress: Callable[[str], None]) -> None:
    """Decide what happens to an interrupted run's checkpoints before training: resumed when they
    carry this run's fingerprint; otherwise discarded with ``overwrite``, else refused (the
    workers would continue the old weights under other settings, data or keys)."""
    from raypriv.runtime.train import saved_state

    state = saved_state(checkpoints, RUN_NAME)
    if state is None:
        return
    if state.get("run") == run:
        progress(f"resuming the interrupted run in {checkpoints} after epoch {state['epoch']}")
        return
    if not overwrite:
        raise ArtifactError(f"{checkpoints} holds an interrupted MTK run (after epoch {state['epoch']}) of other "
                            "settings, data or keys: re-run with the ones it was started with to resume it, pass "
                            "overwrite=True (--overwrite) to discard it, or remove that directory")
    progress(f"discarding the interrupted run in {checkpoints} (other settings, data or keys; overwrite)")
    storage.remove_tree(storage.join(checkpoints, RUN_NAME))


def run_fingerprint(loop_cfg: dict, *, workers: int, data: str, keys: "KeySet") -> str:
    """What a checkpoint must match to be resumed: a SHA-256 of the loop settings, the worker
    count (each worker's shard and random streams depend on it), the keyed fingerprint of the
    training data and an HMAC of each key under a fixed public salt (a key holds at least
    :data:`~raypriv.mtk.keys.MIN_KEY_BITS` random bits, so the digest reveals nothing usable).

    >>> from raypriv.mtk.keys import KeySet
    >>> keys = KeySet.generate(("digit",), image_shape=(8, 8, 1))
    >>> a = run_fingerprint({"lr": 0.02}, workers=2, data="d", keys=keys)
    >>> a == run_fingerprint({"lr": 0.02}, workers=2, data="d", keys=keys)
    True
    >>> a == run_fingerprint({"lr": 0.02}, workers=2, data="d", keys=KeySet.generate(("digit",), image_shape=(8, 8, 1)))
    False
    """
    import hashlib
    import json

    from raypriv.mtk.keys import key_digests

    body = {"loop": loop_cfg, "workers": workers, "data": data,
            "keys": key_digests(keys, salt=hashlib.sha256(b"raypriv-mtk-resume").hexdigest())}
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()


def unformed_gates(history: list[dict], layout: TaskLayout) -> list[str]:
    """Warnings for secured tasks that answer no better than chance *with* their key on the
    training rows in the last epoch: the gate has not formed yet (a short run: mnist5k-tasks
    needs about 3 epochs) or the network collapsed (measured once: two secured tasks on
    mnist5k-pairs, every answer "locked" from epoch 2 on, with a finite loss).

    >>> layout = TaskLayout(("digit", "parity"), (10, 2), ("digit",), locked=True)
    >>> [line] = unformed_gates([{"epoch": 5, "acc": {"digit": 0.0, "parity": 0.55}}], layout)
    >>> line[:line.index(":", 9)]
    'warning: digit answers no better than chance with its key on the training rows (0.0% in epoch 5, chance 10.0%)'
    >>> unformed_gates([{"epoch": 5, "acc": {"digit": 0.4, "parity": 0.55}}], layout)
    []
    """
    last = history[-1]
    return [f"warning: {t} answers no better than chance with its key on the training rows ({last['acc'][t]:.1%} "
            f"in epoch {last['epoch']}, chance {1 / k:.1%}): the gate has not formed; train for more epochs, or lower "
            "train.lr if it collapsed"
            for t, k in zip(layout.names, layout.num_classes) if t in layout.secured and last["acc"][t] <= 1 / k]


def _class_names(info, task: str) -> list[str]:
    if task == info.label_name:
        return list(info.class_names)
    return list(next(c.class_names for c in info.label_columns if c.name == task))
