"""The teacher: a BatchNorm network trained on the private corpus, saved with its provenance.

A teacher directory holds ``model.pt`` (the ``state_dict``) and ``manifest.json`` with the
model name and constructor arguments, the recipe that trained it (or where an imported
checkpoint came from), the fingerprint of the corpus it saw and its test accuracy.

Train one as a Ray Train job (several DDP workers) with :func:`train_teacher`, or wrap a
checkpoint of your own with :func:`import_teacher`; :func:`load_teacher` reads either::

    from raypriv.data import load_corpus
    from raypriv.classifier import VictimConfig
    from raypriv.synth import train_teacher, load_teacher
    train_teacher(load_corpus("digits"), load_corpus("digits", split="test"),
                  output="out/digits-teacher", config=VictimConfig(epochs=5))
    load_teacher("out/digits-teacher").build().eval()     # a torch.nn.Module
"""
from __future__ import annotations

import dataclasses
import os
import shutil
import time
from typing import TYPE_CHECKING, Any, Callable

from raypriv.errors import ArtifactError, DataError
from raypriv.files import local_dir

if TYPE_CHECKING:  # pragma: no cover
    from raypriv.data.corpus import Corpus
    from raypriv.models import ModelPayload
    from raypriv.classifier.config import VictimConfig
    from raypriv.runtime import ResourceSpec

WEIGHTS_NAME = "model.pt"
TEACHER_METHOD = "synth-teacher"


@dataclasses.dataclass
class Teacher:
    """A trained network: registry ``model`` name, its constructor ``model_kwargs``
    (``in_channels``, ``num_classes``, ``image_size``), weights and manifest."""

    model: str
    model_kwargs: dict[str, int]
    state: dict[str, Any]
    manifest: dict[str, Any]
    path: str | None = None

    def build(self):
        """The network with the teacher's weights (in train mode; call ``.eval()``)."""
        return self.payload().build("cpu")

    @property
    def image_shape(self) -> tuple[int, int, int]:
        k = self.model_kwargs
        return (k["image_size"], k["image_size"], k["in_channels"])

    def weights_digest(self) -> str:
        """A content hash of the weights (names, dtypes, values): identifies this exact teacher."""
        import hashlib

        h = hashlib.sha256()
        for k in sorted(self.state):
            t = self.state[k].detach().cpu().contiguous()
            h.update(f"{k}:{t.dtype}:{tuple(t.shape)}".encode())
            h.update(t.numpy().tobytes())
        return h.hexdigest()[:32]

    def payload(self) -> "ModelPayload":
        """What a Ray actor needs to rebuild the network (put it in the object store once)."""
        from raypriv.models import ModelPayload

        return ModelPayload(model=self.model, model_kwargs=dict(self.model_kwargs), state=self.state)

    def check_corpus(self, corpus: "Corpus") -> None:
        """Raise :class:`DataError` unless ``corpus`` has the image shape and classes the teacher expects."""
        h, w, c = (int(v) for v in corpus.info.image_shape)
        th, tw, tc = self.image_shape
        if (h, w, c) != (th, tw, tc):
            raise DataError(f"images are {h}x{w}x{c} but the teacher ({self.model}) expects {th}x{tw}x{tc}; "
                            "load the corpus with resize= or train a teacher on images of this size",
                            item=corpus.info.source)
        if corpus.info.num_classes != self.model_kwargs["num_classes"]:
            raise DataError(f"{corpus.info.num_classes} classes but the teacher has "
                            f"{self.model_kwargs['num_classes']} outputs", item=corpus.info.source)


def _model_kwargs(corpus: "Corpus") -> dict[str, int]:
    from raypriv.models import ModelPayload

    h, w, _ = (int(v) for v in corpus.info.image_shape)
    if h != w:
        raise DataError(f"teachers take square images, got {h}x{w}", item=corpus.info.source)
    return ModelPayload.image_kwargs(corpus.info.image_shape, corpus.info.num_classes)


def train_teacher(train: "Corpus", test: "Corpus", *, output: str, config: "VictimConfig",
                  resources: "ResourceSpec | None" = None, overwrite: bool = False,
                  progress: Callable[[str], None] = print) -> Teacher:
    """Train ``config.model`` on ``train`` as a Ray Train job and save it to ``output``.

    The recipe is the evaluation harness's (:class:`~raypriv.evaluate.VictimConfig`:
    SGD, cosine schedule, crop/flip augmentation, DDP over ``resources.workers``).
    The model must have BatchNorm layers, since the class-wise statistics are read from them.
    """
    import torch

    from raypriv.classifier.train import train_victim
    from raypriv.runtime import ResourceSpec

    resources = resources or ResourceSpec.auto()
    kwargs = _model_kwargs(train)
    from raypriv.models import build_model
    from raypriv.models import bn_layers

    bn_layers(build_model(config.model, **kwargs), model_name=config.model)  # fail before training
    _check_target(output, overwrite=overwrite)
    t0 = time.time()
    progress(f"training teacher {config.model} on {train.info.num_rows:,} images of {train.info.source} "
             f"({config.epochs} epochs, {resources.workers} worker(s))")
    runs = os.path.join(os.path.dirname(os.path.abspath(output)) or ".", ".raypriv-runs")
    result = train_victim(train, test, config=config, resources=resources, storage_path=runs, name="teacher")
    state = torch.load(os.path.join(result.checkpoint_path, WEIGHTS_NAME), map_location="cpu", weights_only=True)
    shutil.rmtree(os.path.dirname(result.checkpoint_path.rstrip("/")), ignore_errors=True)
    teacher = Teacher(model=config.model, model_kwargs=kwargs, state=state, manifest={})
    teacher.manifest = _teacher_manifest(teacher, params={"recipe": dataclasses.asdict(config)},
                                         input_fingerprint=train.keyed_fingerprint(),
                                         extra={"source": train.info.source, "test_source": test.info.source,
                                                "class_names": list(train.info.class_names),
                                                "test_acc": result.test_acc, "train_acc": result.train_acc,
                                                "wall_time_s": time.time() - t0})
    teacher.path = save_teacher(teacher, output, overwrite=overwrite)
    progress(f"teacher test accuracy {result.test_acc:.2%}; saved to {teacher.path}")
    return teacher


def import_teacher(checkpoint: str, *, model: str, in_channels: int, num_classes: int, image_size: int,
                   output: str, overwrite: bool = False) -> Teacher:
    """Wrap a user's ``state_dict`` file (``torch.save(net.state_dict(), checkpoint)``) for a
    registered ``model`` as a teacher directory. The weights must load strictly."""
    import torch

    from raypriv.models import build_model
    from raypriv.models import bn_layers

    kwargs = {"in_channels": in_channels, "num_classes": num_classes, "image_size": image_size}
    try:
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch raises many types (UnpicklingError, RuntimeError, EOFError, ...)
        raise ArtifactError(f"{checkpoint}: cannot read a torch state_dict ({type(e).__name__}: "
                            f"{str(e).splitlines()[0] if str(e) else ''})") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    net = build_model(model, **kwargs)
    try:
        net.load_state_dict(state)
    except RuntimeError as e:
        raise ArtifactError(f"{checkpoint}: does not match model {model!r} {kwargs}: {e}") from None
    bn_layers(net, model_name=model)
    teacher = Teacher(model=model, model_kwargs=kwargs, state=net.state_dict(), manifest={})
    teacher.manifest = _teacher_manifest(teacher, params={"imported_from": os.path.abspath(checkpoint)},
                                         input_fingerprint=None, extra={})
    teacher.path = save_teacher(teacher, output, overwrite=overwrite)
    return teacher


def _teacher_manifest(teacher: Teacher, *, params: dict, input_fingerprint: str | None, extra: dict) -> dict:
    from raypriv.manifest import build_manifest

    return build_manifest(method=TEACHER_METHOD, params={"model": teacher.model, "model_kwargs": teacher.model_kwargs,
                                                         **params},
                          seed=params.get("recipe", {}).get("seed"), input_fingerprint=input_fingerprint,
                          extra={**extra, "files": [WEIGHTS_NAME]})


def _check_target(output: str, *, overwrite: bool) -> None:
    if os.path.exists(os.path.join(local_dir(output), "manifest.json")) and not overwrite:
        raise ArtifactError(f"{output} already holds a teacher; pass overwrite=True (--overwrite) to replace it")


def save_teacher(teacher: Teacher, output: str, *, overwrite: bool = False) -> str:
    """Write ``model.pt`` and ``manifest.json`` atomically (temporary directory, then rename)."""
    import torch

    from raypriv.manifest import write_manifest
    from raypriv.data.writer import AtomicDir

    _check_target(output, overwrite=overwrite)
    with AtomicDir(local_dir(output), overwrite=True) as tmp:
        torch.save(teacher.state, os.path.join(tmp, WEIGHTS_NAME))
        write_manifest(tmp, teacher.manifest)
    return local_dir(output)


def load_teacher(path: str) -> Teacher:
    """Read a teacher directory written by :func:`train_teacher` or :func:`import_teacher`."""
    import torch

    from raypriv.manifest import read_manifest

    manifest = read_manifest(path, method=TEACHER_METHOD, what="a teacher")
    params = manifest["params"]
    weights = os.path.join(os.path.expanduser(path), WEIGHTS_NAME)
    if not os.path.exists(weights):
        raise ArtifactError(f"{path}: {WEIGHTS_NAME} is missing")
    state = torch.load(weights, map_location="cpu", weights_only=True)
    return Teacher(model=params["model"], model_kwargs={k: int(v) for k, v in params["model_kwargs"].items()},
                   state=state, manifest=manifest, path=os.path.abspath(os.path.expanduser(path)))
