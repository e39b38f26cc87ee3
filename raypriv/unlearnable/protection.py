"""``protect``: generate error-minimizing noise for a corpus and write the released corpus."""
from __future__ import annotations

import dataclasses
import time
from typing import Callable

import numpy as np

from raypriv.errors import ArtifactError
from raypriv.runtime import ResourceSpec
from raypriv.unlearnable.config import UnlearnableConfig
from raypriv.unlearnable.generator import NoiseResult, generate_noise


@dataclasses.dataclass
class ProtectResult:
    output: str
    manifest: dict
    noise: NoiseResult


def _release_batch(batch: dict, *, class_noise: np.ndarray | None) -> dict:
    from raypriv.unlearnable.pgd import release

    noise = batch["noise"] if class_noise is None else class_noise[batch["label"]]
    rest = {k: v for k, v in batch.items() if k != "noise"}     # further label columns travel along
    return {**rest, "image": release(batch["image"], noise)}


def released_dataset(result: NoiseResult):
    """The protected corpus as a Ray Dataset of uint8 images (noise applied and quantized)."""
    return result.work.map_batches(_release_batch, fn_kwargs=dict(class_noise=result.class_noise),
                                   batch_format="numpy")


def _visual_cost_batch(batch: dict, *, class_noise: np.ndarray | None) -> dict:
    from raypriv.similarity import psnr_per_image, ssim_per_image

    released = _release_batch(batch, class_noise=class_noise)["image"]
    return {"psnr_db": psnr_per_image(batch["image"], released), "ssim": ssim_per_image(batch["image"], released)}


def visual_cost(result: NoiseResult) -> dict:
    """What the released images cost visually: PSNR (dB) and SSIM of every released image
    against its original, summarized (median, mean, p95, min, max)."""
    from raypriv.similarity import summarize

    scores = result.work.map_batches(_visual_cost_batch, fn_kwargs=dict(class_noise=result.class_noise),
                                     batch_format="numpy", batch_size=64)    # float64 SSIM: bounded memory
    parts: dict[str, list] = {"psnr_db": [], "ssim": []}
    for batch in scores.iter_batches(batch_format="numpy", batch_size=4096):
        for key, values in parts.items():
            values.append(batch[key])
    return {key: summarize(np.concatenate(values)) for key, values in parts.items() if values}


def default_checkpoint_dir(output: str) -> str | None:
    """Checkpoints live beside a local output (``OUT.checkpoints``); a URI output gets none unless
    ``checkpoint_dir`` names where: its place is as private as the source (sample-wise
    checkpoints hold the original images), which the release's bucket need not be."""
    if "://" in output and not output.startswith("file://"):
        return None
    return output.removeprefix("file://").rstrip("/") + ".checkpoints"


def protect(corpus, *, output: str, config: UnlearnableConfig | None = None, resources: ResourceSpec | None = None,
            checkpoint_dir: str | None = None, keep_checkpoints: bool = False, overwrite: bool = False,
            progress: Callable[[str], None] = print) -> ProtectResult:
    """Make ``corpus`` unlearnable and write it to ``output`` (Parquet shards + manifest.json).

    Re-running the same call after an interruption resumes from the last finished round
    (checkpoints default to ``OUTPUT.checkpoints``). Example::

        from raypriv.data import load_corpus
        from raypriv.unlearnable import UnlearnableConfig, protect
        protect(load_corpus("digits"), output="out/digits-ue",
                config=UnlearnableConfig.preset("restart", mode="classwise"))
    """
    from raypriv.data import Corpus, read_manifest, write_corpus
    from raypriv.manifest import build_manifest, is_finished

    config = config or UnlearnableConfig()
    resources = resources or ResourceSpec.auto()
    if is_finished(output) and not overwrite:
        raise ArtifactError(f"{output} already holds a finished corpus; pass overwrite=True (--overwrite) "
                            "to replace it")
    checkpoint_dir = checkpoint_dir or default_checkpoint_dir(output)
    t0 = time.time()
    h, w, c = corpus.info.image_shape
    progress(f"protecting {corpus.info.num_rows:,} images ({corpus.info.source}, {h}x{w}x{c}) with "
             f"{config.mode} error-minimizing noise, eps={config.budget_255}/255, {resources.workers} worker(s)")
    result = generate_noise(corpus, config=config, resources=resources, checkpoint_dir=checkpoint_dir,
                            progress=progress)
    last = result.history[-1] if result.history else {}
    cost = visual_cost(result)
    progress(f"visual cost of the release: PSNR {cost['psnr_db']['mean']:.1f} dB, SSIM {cost['ssim']['mean']:.3f} "
             "(mean over images, released vs original)")
    manifest = build_manifest(
        method=f"unlearnable-{config.mode}", params=config.to_dict(), seed=config.seed,
        input_fingerprint=result.input_fingerprint,
        extra={"source": corpus.info.source, "split": corpus.info.split, "epsilon_255": config.budget_255,
               "rounds": len(result.history), "stop_reason": result.stop_reason,
               "final_perturbed_accuracy": last.get("perturbed_acc"), "history": result.history,
               "visual_cost": cost,
               "resources": dataclasses.asdict(resources), "generation_wall_time_s": time.time() - t0})
    released = Corpus(ds=released_dataset(result), info=corpus.info)
    path = write_corpus(released, output, manifest=manifest, overwrite=overwrite)
    manifest = read_manifest(path)  # as written: with rows, checksums, fingerprint, version
    if checkpoint_dir and not keep_checkpoints:
        from raypriv.unlearnable.checkpoint import remove

        remove(checkpoint_dir)
    progress(f"wrote {corpus.info.num_rows:,} protected images to {path} ({result.stop_reason})")
    return ProtectResult(output=path, manifest=manifest, noise=result)

