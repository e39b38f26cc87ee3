"""``raypriv dpvae sample``: a labeled synthetic corpus from a trained (conditional) DP-VAE.

Sampling is post-processing of the DP model, so the corpus inherits its (ε, δ), which the
manifest repeats. The work is a Ray Data job over sampling tasks (one batch of one class),
run on an actor pool that receives the weights once through the object store; the rows are
written as a raypriv corpus (Parquet + ``manifest.json``, atomically). Row ids are
``dpvae/c{label:03d}/{index:05d}``; the same seed gives the same images.

``temperature`` scales the latent draws, z ~ N(0, t²·I). Below 1 the images are more typical
of their class and less diverse; under DP noise the decoder's class conditioning is weak far
from the prior's centre, and t = 0.5 gave a better downstream classifier than t = 1 (chosen on
a validation split of the training set, never on the test set; see the README).
"""
from __future__ import annotations

import dataclasses
import os
from typing import TYPE_CHECKING, Callable

import numpy as np

from raypriv.dpvae.config import DEFAULT_TEMPERATURE
from raypriv.errors import ArtifactError, ConfigError
from raypriv.runtime.pool import PoolWorker

if TYPE_CHECKING:  # pragma: no cover
    from raypriv.models import ModelPayload
    from raypriv.runtime import ResourceSpec

SAMPLE_METHOD = "dpvae-sample"
#: Images decoded per task.
TASK_BATCH = 500


@dataclasses.dataclass
class TrainedVAE:
    """A trained VAE directory: weights, constructor arguments and the training manifest."""

    state: dict
    manifest: dict
    path: str

    @property
    def model_name(self) -> str:
        return self.manifest["params"]["model"]

    @property
    def model_kwargs(self) -> dict:
        return dict(self.manifest["params"]["model_kwargs"])

    def payload(self) -> "ModelPayload":
        from raypriv.models import ModelPayload

        return ModelPayload(model=self.model_name, model_kwargs=self.model_kwargs, state=self.state)


def load_vae(path: str) -> TrainedVAE:
    """A trained VAE from its model directory (``release/``), or from the run directory that holds it."""
    import torch

    from raypriv.dpvae.train import METHOD_NAME, WEIGHTS_NAME, model_dir
    from raypriv.manifest import is_finished, read_manifest

    path = os.path.expanduser(path)
    if not is_finished(path):
        path = model_dir(path) or path
    manifest = read_manifest(path, method=METHOD_NAME, what="a trained DP-VAE")
    weights = os.path.join(path, WEIGHTS_NAME)
    if not os.path.exists(weights):
        raise ArtifactError(f"{path}: {WEIGHTS_NAME} is missing")
    return TrainedVAE(state=torch.load(weights, map_location="cpu", weights_only=True), manifest=manifest,
                      path=os.path.abspath(os.path.expanduser(path)))


def _build(payload: "ModelPayload", device="cpu"):
    from raypriv.dpvae.models import build_vae

    return payload.build(device, builder=build_vae).eval()


class _Decoder(PoolWorker):
    """Actor-pool worker: decode one task's latent draws (drawn on the CPU from the task's
    seed, so a GPU decodes the same latents) into uint8 images."""

    def setup(self, payload: "ModelPayload", *, temperature: float) -> None:
        self.net = _build(payload, self.device)
        self.temperature = temperature

    def __call__(self, task: dict) -> dict:
        import torch

        ids, labels, images = [], [], []
        for label, start, n, seed in zip(task["label"], task["start"], task["n"], task["seed"]):
            gen = torch.Generator().manual_seed(int(seed))
            y = torch.full((int(n),), int(label), dtype=torch.long)
            x = self.net.sample(y, generator=gen, temperature=self.temperature)
            images.append((x.permute(0, 2, 3, 1).cpu().numpy() * 255).round().clip(0, 255).astype(np.uint8))
            ids += [f"dpvae/c{int(label):03d}/{int(start) + i:05d}" for i in range(int(n))]
            labels.append(np.full(int(n), int(label), dtype=np.int64))
        return {"id": np.array(ids, dtype=object), "label": np.concatenate(labels), "image": np.concatenate(images)}


def sample_tasks(num_classes: int, images_per_class: int, *, seed: int) -> list[dict]:
    from raypriv.hashing import task_seed

    return [{"label": c, "start": s, "n": min(TASK_BATCH, images_per_class - s), "seed": task_seed(seed, c, s)}
            for c in range(num_classes) for s in range(0, images_per_class, TASK_BATCH)]


def sample_dpvae(model_dir: str, *, output: str, images_per_class: int, seed: int = 0,
                 temperature: float = DEFAULT_TEMPERATURE, resources: "ResourceSpec | None" = None,
                 overwrite: bool = False, progress: Callable[[str], None] = print) -> str:
    """Write ``images_per_class`` sampled images of every class as a corpus at ``output``."""
    import math

    import ray

    from raypriv.data import Corpus
    from raypriv.data.corpus import CorpusInfo
    from raypriv.data.writer import write_corpus
    from raypriv.manifest import build_manifest
    from raypriv.runtime import ResourceSpec
    from raypriv.runtime.execute import run
    from raypriv.runtime.pool import pool_map

    if not isinstance(images_per_class, int) or images_per_class < 1:
        raise ConfigError("images_per_class", f"must be an integer >= 1, got {images_per_class!r}")
    if not (isinstance(temperature, (int, float)) and math.isfinite(temperature) and temperature > 0):
        raise ConfigError("temperature", f"must be a finite number > 0, got {temperature!r}")
    vae = load_vae(model_dir)
    from raypriv.dpvae.models import build_vae

    if not build_vae(vae.model_name, **vae.model_kwargs).num_classes:
        raise ConfigError("model", f"{model_dir} is an unconditional VAE ({vae.model_name!r}); labeled samples "
                                   "need a conditional one ('cvae' or 'mlp_cvae')")
    resources = resources or ResourceSpec.auto()
    m = vae.manifest
    classes = int(vae.model_kwargs["num_classes"])
    tasks = sample_tasks(classes, images_per_class, seed=seed)
    progress(f"sampling {images_per_class} images for each of {classes} classes from {model_dir}")
    ds = run(pool_map(ray.data.from_items(tasks), _Decoder, resources=resources, batch_size=1, shared=vae.payload(),
                      options={"temperature": float(temperature)}), lambda d: d.materialize())
    info = CorpusInfo(source=f"dpvae:{vae.path}", split="train", num_rows=classes * images_per_class,
                      image_shape=tuple(m["image_shape"]), num_classes=classes,
                      class_names=tuple(m["class_names"]), classes_declared=True)
    manifest = build_manifest(method=SAMPLE_METHOD, params={"images_per_class": images_per_class, "model": vae.path,
                                                                   "temperature": float(temperature)},
                              seed=seed, input_fingerprint=m.get("input_fingerprint"),
                              extra={"privacy": m.get("privacy"), "trained_with": m.get("params", {}).get("method")})
    path = write_corpus(Corpus(ds=ds, info=info), output, manifest=manifest, overwrite=overwrite)
    progress(f"wrote {classes * images_per_class} images → {path}")
    return path
