"""Class-wise BatchNorm statistics of a teacher over a private corpus, merged exactly.

For every class ``c`` and every BatchNorm layer ``l`` we record the per-channel mean and
(biased) variance of the layer's *input* over all of class ``c``'s images and pixel
positions, with the teacher in eval mode (so each image's activations do not depend on
which batch it was in). A Ray Data actor pool (the teacher reaches each actor once through
the object store) emits, per batch and class, the count, per-channel sum and sum of squares
in float64; the driver adds these partial sums (a few numbers per batch, never images) and
only then divides: no averaging of averages, so any sharding gives the same result.

>>> import numpy as np
>>> from raypriv.synth.stats import merge_partials
>>> part = lambda s, ss: {"label": np.array([0]), "images": np.array([1]), "count": np.array([[2]]),
...                       "sum": np.array([[s]]), "sumsq": np.array([[ss]])}
>>> t = merge_partials([part(2.0, 2.0), part(6.0, 18.0)], num_classes=1, width=1, num_layers=1)
>>> mean = t["sum"][0, 0] / t["count"][0, 0]
>>> float(mean), float(t["sumsq"][0, 0] / t["count"][0, 0] - mean ** 2), int(t["images"][0])
(2.0, 1.0, 2)
"""
from __future__ import annotations

import dataclasses
import os
import time
from typing import TYPE_CHECKING, Callable

import numpy as np

from raypriv.errors import ConfigError, DataError
from raypriv.models import bn_layers
from raypriv.runtime.pool import PoolWorker

if TYPE_CHECKING:  # pragma: no cover
    from raypriv.data.corpus import Corpus
    from raypriv.runtime import ResourceSpec
    from raypriv.models import ModelPayload
    from raypriv.synth.teacher import Teacher

STATS_METHOD = "synth-bn-stats"
ARRAYS_NAME = "stats.npz"


@dataclasses.dataclass
class ClassBNStats:
    """Per-class BN input statistics.

    ``layers``: BN layer names; ``channels``: their widths. ``count[c, l]``: number of
    values per channel of layer ``l`` seen for class ``c`` (images × H × W). ``mean[l]`` and
    ``var[l]``: float64 arrays ``(num_classes, channels[l])``. ``global_mean``/``global_var``:
    the teacher's own running statistics (what DeepInversion matches), for comparison.
    """

    layers: tuple[str, ...]
    channels: tuple[int, ...]
    count: np.ndarray
    mean: list[np.ndarray]
    var: list[np.ndarray]
    global_mean: list[np.ndarray]
    global_var: list[np.ndarray]
    manifest: dict = dataclasses.field(default_factory=dict)
    path: str | None = None

    @property
    def num_classes(self) -> int:
        return int(self.count.shape[0])

    def targets(self, label: int, *, kind: str = "classwise") -> list[tuple[np.ndarray, np.ndarray]]:
        """``[(mean, var)]`` per layer that a batch of class ``label`` is pushed towards."""
        if kind == "classwise":
            return [(m[label], v[label]) for m, v in zip(self.mean, self.var)]
        if kind == "global":
            return list(zip(self.global_mean, self.global_var))
        raise ConfigError("statistics", f"must be 'classwise' or 'global', got {kind!r}")

    def save(self, output: str) -> str:
        """Write ``stats.npz`` + ``manifest.json`` into ``output`` (atomically)."""
        from raypriv.data.writer import AtomicDir
        from raypriv.manifest import write_manifest
        from raypriv.files import local_dir

        arrays = {"count": self.count}
        for i in range(len(self.layers)):
            arrays.update({f"mean_{i}": self.mean[i], f"var_{i}": self.var[i],
                           f"global_mean_{i}": self.global_mean[i], f"global_var_{i}": self.global_var[i]})
        with AtomicDir(local_dir(output), overwrite=True) as tmp:
            np.savez(os.path.join(tmp, ARRAYS_NAME), **arrays)
            write_manifest(tmp, {**self.manifest, "layers": list(self.layers), "channels": list(self.channels),
                                 "files": [ARRAYS_NAME]})
        self.path = local_dir(output)
        return self.path

    @classmethod
    def load(cls, path: str) -> "ClassBNStats":
        from raypriv.manifest import read_manifest

        manifest = read_manifest(path, method=STATS_METHOD, what="BN statistics")
        with np.load(os.path.join(path, ARRAYS_NAME)) as z:
            n = len(manifest["layers"])
            return cls(layers=tuple(manifest["layers"]), channels=tuple(manifest["channels"]), count=z["count"],
                       mean=[z[f"mean_{i}"] for i in range(n)], var=[z[f"var_{i}"] for i in range(n)],
                       global_mean=[z[f"global_mean_{i}"] for i in range(n)],
                       global_var=[z[f"global_var_{i}"] for i in range(n)], manifest=manifest,
                       path=os.path.abspath(path))


class BNInputRecorder:
    """Forward hooks that keep the input of every BN layer of ``model`` for the last forward pass."""

    def __init__(self, model):
        self.inputs: list = []
        self._handles = [m.register_forward_hook(self._hook) for _, m in bn_layers(model)]

    def _hook(self, module, args, output):
        self.inputs.append(args[0])

    def clear(self) -> None:
        self.inputs = []

    def remove(self) -> None:
        for h in self._handles:
            h.remove()


def class_partial_sums(inputs: list, labels, num_classes: int) -> dict:
    """Per class present in ``labels``: counts ``(L,)``, and per-channel float64 sums and sums of
    squares of every layer's input, concatenated over layers (width = sum of channels)."""
    import torch

    y = torch.as_tensor(labels).long()
    present = torch.unique(y)
    sums, sumsq, counts = [], [], []
    for x in inputs:
        xd = x.detach().double()
        per_img = xd.sum(dim=(2, 3))
        per_img_sq = (xd * xd).sum(dim=(2, 3))
        s = torch.zeros(num_classes, x.shape[1], dtype=torch.float64).index_add_(0, y, per_img)
        ss = torch.zeros(num_classes, x.shape[1], dtype=torch.float64).index_add_(0, y, per_img_sq)
        sums.append(s[present])
        sumsq.append(ss[present])
        counts.append(torch.bincount(y, minlength=num_classes)[present] * x.shape[2] * x.shape[3])
    return {"label": present.numpy().astype(np.int64),
            "images": torch.bincount(y, minlength=num_classes)[present].numpy().astype(np.int64),
            "count": torch.stack(counts, dim=1).numpy().astype(np.int64),
            "sum": torch.cat(sums, dim=1).numpy(), "sumsq": torch.cat(sumsq, dim=1).numpy()}


class StatsCollector(PoolWorker):
    """Actor-pool worker: per-class partial BN sums of a batch of corpus rows."""

    def setup(self, payload: "ModelPayload") -> None:
        from raypriv.models import build_from_payload

        self.model = build_from_payload(payload, self.device).eval()
        self.recorder = BNInputRecorder(self.model)
        self.num_classes = payload.num_classes

    def __call__(self, batch: dict) -> dict:
        import torch

        from raypriv.models import to_float_nchw

        x = to_float_nchw(torch.as_tensor(np.asarray(batch["image"]))).to(self.device)
        self.recorder.clear()
        with torch.no_grad():
            self.model(x)
        inputs = [t.cpu() for t in self.recorder.inputs]
        return class_partial_sums(inputs, np.asarray(batch["label"]), self.num_classes)


def merge_partials(parts, *, num_classes: int, width: int, num_layers: int) -> dict[str, np.ndarray]:
    """Add per-batch partial rows (any order, any sharding) into ``images`` ``(K,)``,
    ``count`` ``(K, L)``, ``sum`` and ``sumsq`` ``(K, width)``."""
    out = {"images": np.zeros(num_classes, dtype=np.int64),
           "count": np.zeros((num_classes, num_layers), dtype=np.int64),
           "sum": np.zeros((num_classes, width), dtype=np.float64),
           "sumsq": np.zeros((num_classes, width), dtype=np.float64)}
    for p in parts:
        for i, c in enumerate(np.asarray(p["label"]).astype(np.int64)):
            for key, total in out.items():
                total[c] += np.asarray(p[key][i])
    return out


def compute_class_stats(corpus: "Corpus", teacher: "Teacher", *, resources: "ResourceSpec | None" = None,
                        batch_size: int = 256, progress: Callable[[str], None] = print) -> ClassBNStats:
    """Class-wise BN statistics of ``teacher`` over ``corpus`` (see module docstring).

    Raises :class:`DataError` if the corpus does not fit the teacher or a class has no images."""
    from raypriv.runtime import ResourceSpec
    from raypriv.runtime.execute import run
    from raypriv.runtime.pool import pool_map

    resources = resources or ResourceSpec.auto()
    teacher.check_corpus(corpus)
    net = teacher.build().eval()
    layers = bn_layers(net, model_name=teacher.model)
    channels = tuple(int(m.num_features) for _, m in layers)
    t0 = time.time()
    progress(f"recording class-wise statistics of {len(layers)} BN layers over {corpus.info.num_rows:,} images "
             f"of {corpus.info.source} ({resources.workers} worker(s))")
    partial = pool_map(corpus.ds.select_columns(["image", "label"]), StatsCollector, resources=resources,
                       batch_size=batch_size, shared=teacher.payload())
    parts = run(partial, lambda d: list(d.iter_batches(batch_size=None, batch_format="numpy")))
    num_classes = int(teacher.model_kwargs["num_classes"])
    totals = merge_partials(parts, num_classes=num_classes, width=sum(channels), num_layers=len(layers))
    count, s, ss = totals["count"], totals["sum"], totals["sumsq"]
    empty = [c for c in range(num_classes) if totals["images"][c] == 0]
    if empty:
        names = corpus.info.class_names
        shown = ", ".join(f"{c} ({names[c]})" if c < len(names) else str(c) for c in empty)
        raise DataError(f"class(es) {shown} have no images; every class needs images for class-wise statistics",
                        item=corpus.info.source)
    mean, var, offset = [], [], 0
    for i, ch in enumerate(channels):
        n = count[:, i:i + 1].astype(np.float64)
        m = s[:, offset:offset + ch] / n
        mean.append(m)
        var.append(np.maximum(ss[:, offset:offset + ch] / n - m * m, 0.0))
        offset += ch
    from raypriv.manifest import build_manifest

    manifest = build_manifest(
        method=STATS_METHOD, params={"batch_size": batch_size}, seed=None, input_fingerprint=corpus.keyed_fingerprint(),
        extra={"teacher": teacher.path, "teacher_weights": teacher.weights_digest(), "teacher_fingerprint": teacher.manifest.get("input_fingerprint"),
               "teacher_model": teacher.model, "model_kwargs": teacher.model_kwargs,
               "images_per_class": totals["images"].tolist(),
               "source": corpus.info.source, "class_names": list(corpus.info.class_names),
               "wall_time_s": time.time() - t0})
    progress(f"statistics of {int(totals['images'].sum()):,} images recorded "
             f"({time.time() - t0:.0f}s)")
    return ClassBNStats(layers=tuple(n for n, _ in layers), channels=channels, count=count, mean=mean, var=var,
                        global_mean=[m.running_mean.double().numpy().copy() for _, m in layers],
                        global_var=[m.running_var.double().numpy().copy() for _, m in layers], manifest=manifest)

