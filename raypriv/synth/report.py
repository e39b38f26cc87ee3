"""``raypriv synth evaluate``: is the synthetic set useful, and does it protect the private data?

(a) **Utility.** A fresh classifier (the evaluation harness's Ray Train victim recipe) is
trained only on the first ``k`` synthetic images per class, for each ``k`` in
``images_per_class``, and on the real training set; all are tested on the real test set.
A synthetic subset is repeated up to the real set's size (``equal_steps``), so every model
takes the same number of optimizer steps.
(b) **Visual privacy.** For every synthetic image, its nearest real training image in pixel
space (L2), with SSIM and PSNR, summarized; ``nearest.png`` shows synthetic images beside
their nearest real ones. The search is a Ray Data pass over the real corpus (actor pool,
synthetic images shipped once through the object store).
(c) **Membership inference.** A loss-threshold attack against the model trained on the
synthetic set and against the one trained on the real set: members are the real training
images (which the teacher saw), non-members the real test images; we report AUC and
TPR at 1 % FPR.
"""
from __future__ import annotations

import dataclasses
import os
import time
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from raypriv.errors import ConfigError, DataError
from raypriv.runtime.pool import PoolWorker

#: The picture of the synthetic images, per class, beside real test images of the same class.
SAMPLES_PNG = "samples.png"
#: The manifest method of a finished synthetic-data evaluation.
EVALUATION_METHOD = "synth-evaluation"
from raypriv.synth.config import SynthEvalConfig

if TYPE_CHECKING:  # pragma: no cover
    from raypriv.data.corpus import Corpus
    from raypriv.runtime import ResourceSpec
    from raypriv.synth.teacher import Teacher


def synth_index(ids) -> np.ndarray:
    """The per-class image index encoded in synthetic ids (``synth/c003/00042`` → 42)."""
    try:
        return np.array([int(str(i).rsplit("/", 1)[1]) for i in ids], dtype=np.int64)
    except (IndexError, ValueError):
        raise DataError("ids are not raypriv synthetic ids (synth/cLLL/NNNNN)", item=str(ids[0])) from None


def _first_k(batch: dict, *, k: int) -> dict:
    keep = synth_index(batch["id"]) < k
    return {key: v[keep] for key, v in batch.items()}


def first_per_class(corpus: "Corpus", k: int) -> "Corpus":
    """The first ``k`` synthetic images of every class, as a materialized corpus."""
    from raypriv.data import Corpus

    ds = corpus.ds.map_batches(_first_k, fn_kwargs={"k": k}, batch_format="numpy").materialize()
    return Corpus(ds=ds, info=dataclasses.replace(corpus.info, num_rows=ds.count()))


class _LossScorer(PoolWorker):
    """Actor-pool worker: per-example cross-entropy of several trained models at once."""

    def setup(self, payloads: dict) -> None:
        from raypriv.models import build_from_payload

        self.models = {name: build_from_payload(p, self.device).eval() for name, p in payloads.items()}

    def __call__(self, batch: dict) -> dict:
        import torch
        import torch.nn.functional as F

        from raypriv.models import to_float_nchw

        x = to_float_nchw(torch.as_tensor(np.asarray(batch["image"]))).to(self.device)
        y = torch.as_tensor(batch["label"]).long().to(self.device)
        out = {"member": np.asarray(batch["member"])}
        with torch.no_grad():
            for name, model in self.models.items():
                out[name] = F.cross_entropy(model(x), y, reduction="none").cpu().numpy().astype(np.float64)
        return out


def _with_flag(batch: dict, *, member: bool) -> dict:
    return {**batch, "member": np.full(len(batch["label"]), member)}


def per_example_losses(payloads: dict[str, dict], members: "Corpus", nonmembers: "Corpus", *,
                       resources: "ResourceSpec") -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{name: (member losses, non-member losses)}`` for every model in ``payloads``, in one
    actor-pool pass over both corpora."""
    from raypriv.runtime.execute import run
    from raypriv.runtime.pool import pool_map

    def flagged(corpus, member):
        return corpus.ds.select_columns(["image", "label"]).map_batches(
            _with_flag, fn_kwargs={"member": member}, batch_format="numpy")

    ds = pool_map(flagged(members, True).union(flagged(nonmembers, False)), _LossScorer, resources=resources,
                  batch_size=512, shared=payloads)
    parts = run(ds, lambda d: list(d.iter_batches(batch_format="numpy", batch_size=None)))
    member = np.concatenate([b["member"] for b in parts]).astype(bool)
    out = {}
    for name in payloads:
        loss = np.concatenate([b[name] for b in parts])
        out[name] = (loss[member], loss[~member])
    return out


class _NearestSearch(PoolWorker):
    """Actor-pool worker: for each synthetic image, the closest image of a real batch (L2; numpy)."""

    uses_gpu = False

    def setup(self, images: np.ndarray) -> None:
        self.synth = images.reshape(len(images), -1).astype(np.float32)
        self.synth_sq = (self.synth * self.synth).sum(1)

    def __call__(self, batch: dict) -> dict:
        real = np.asarray(batch["image"])
        flat = real.reshape(len(real), -1).astype(np.float32)
        d2 = self.synth_sq[:, None] + (flat * flat).sum(1)[None, :] - 2.0 * self.synth @ flat.T
        j = d2.argmin(1)
        return {"dist2": [d2[np.arange(len(j)), j].astype(np.float64)], "id": [np.asarray(batch["id"])[j]],
                "image": [real[j]]}


def nearest_real(synth_images: np.ndarray, real: "Corpus", *, resources: "ResourceSpec"):
    """``(ids, images, l2)`` of the nearest real image to each synthetic one, over the whole real corpus."""
    from raypriv.runtime.execute import run
    from raypriv.runtime.pool import pool_map

    ds = pool_map(real.ds.select_columns(["id", "image"]), _NearestSearch, resources=resources, batch_size=1024,
                  shared=synth_images)
    parts = run(ds, lambda d: d.take_all())
    d2 = np.stack([p["dist2"] for p in parts])           # (parts, S)
    best = d2.argmin(0)
    s = np.arange(len(synth_images))
    ids = np.array([parts[b]["id"][i] for i, b in zip(s, best)])
    images = np.stack([parts[b]["image"][i] for i, b in zip(s, best)])
    return ids, images, np.sqrt(np.maximum(d2[best, s], 0))


def evaluate_synthetic(*, synthetic: "Corpus", real_train: "Corpus", real_test: "Corpus",
                       config: SynthEvalConfig | None = None, resources: "ResourceSpec | None" = None,
                       out_dir: str, progress: Callable[[str], None] = print, teacher: "Teacher | None" = None) -> dict:
    """Run (a)–(c) above; write ``report.json``, ``nearest.png`` and ``samples.png`` (synthetic
    images per class beside real test images of the same class) into ``out_dir``; return the report.
    ``teacher`` is needed (only) with ``config.labels == "teacher"``."""
    from raypriv.manifest import finish_report
    from raypriv.runtime import ResourceSpec

    config = config or SynthEvalConfig()
    resources = resources or ResourceSpec.auto()
    _check_inputs(synthetic, real_train, real_test, config)
    if config.labels == "teacher":
        if teacher is None:
            raise ConfigError("labels", "'teacher' labels need the teacher (pass teacher= / --teacher)")
        teacher.check_corpus(synthetic)
    distill = {"teacher": teacher.payload(), "distill": config.distill} if config.labels == "teacher" else {}
    os.makedirs(out_dir, exist_ok=True)
    t0 = time.time()
    report: dict[str, Any] = {"config": config, "synthetic": synthetic.info.source, "real_train": real_train.info.source,
                              "real_test": real_test.info.source, "utility": [], "resources": resources}
    runs = os.path.join(out_dir, "runs")
    real = _train(real_train, real_test, config, resources, runs, progress, "real training set")
    report["utility"].append({"train_set": "real", "images_per_class": None, "rows": real_train.info.num_rows,
                              "repeats": 1, "test_acc": real["test_acc"], "checkpoint": real["checkpoint"]})
    largest = None
    for k in sorted(config.images_per_class):
        subset = first_per_class(synthetic, k)
        times = repeat_factor(config, rows=subset.info.num_rows, real_rows=real_train.info.num_rows)
        res = _train(repeated(subset, times, seed=config.victim.seed), real_test, config, resources, runs, progress,
                     f"{k} synthetic images per class" + (f" (repeated {times}x)" if times > 1 else "")
                     + (" with the teacher's soft labels" if distill else ""), **distill)
        report["utility"].append({"train_set": "synthetic", "images_per_class": k, "rows": subset.info.num_rows,
                                  "repeats": times, "labels": config.labels, "test_acc": res["test_acc"],
                                  "relative_to_real": res["test_acc"] / real["test_acc"],
                                  "checkpoint": res["checkpoint"]})
        largest = res
    report["nearest_real"] = _nearest_section(synthetic, real_train, config, resources, out_dir, progress)
    if config.mia:
        progress("membership inference (loss threshold): real training images vs real test images")
        report["membership_inference"] = _mia({"synthetic_trained": largest["payload"],
                                               "real_trained": real["payload"]}, real_train, real_test, resources)
    from raypriv.figures import save_class_grid

    report["samples_png"] = save_class_grid(
        [("synthetic images", synthetic), ("real test images", real_test)], os.path.join(out_dir, SAMPLES_PNG),
        class_names=tuple(synthetic.info.class_names),
        title=f"{synthetic.info.source}: synthetic images per class beside real images of the same class")
    report["wall_time_s"] = time.time() - t0
    finish_report(out_dir, report, method=EVALUATION_METHOD, params=config,
                  files=tuple(f for f in ("nearest.png", SAMPLES_PNG) if os.path.exists(os.path.join(out_dir, f))))
    return report


def _check_inputs(synthetic, real_train, real_test, config: SynthEvalConfig) -> None:
    for other in (real_train, real_test):
        if tuple(other.info.image_shape) != tuple(synthetic.info.image_shape):
            raise DataError(f"image shape {tuple(other.info.image_shape)} differs from the synthetic set's "
                            f"{tuple(synthetic.info.image_shape)}", item=other.info.source)
        if other.info.num_classes != synthetic.info.num_classes:
            raise DataError(f"{other.info.num_classes} classes, the synthetic set has {synthetic.info.num_classes}",
                            item=other.info.source)
    per_class = synthetic.info.num_rows // max(1, synthetic.info.num_classes)
    if max(config.images_per_class) > per_class:
        raise ConfigError("images_per_class", f"asks for {max(config.images_per_class)} per class, the synthetic set "
                                              f"has {per_class}")


def repeat_factor(config: SynthEvalConfig, *, rows: int, real_rows: int) -> int:
    """How many times a synthetic training set of ``rows`` images is repeated (``equal_steps``):
    enough to be at least as large as the real training set, so that with the same epochs,
    batch and schedule its model takes as many optimizer steps as the real-set model.

    >>> repeat_factor(SynthEvalConfig(), rows=100, real_rows=4000)
    40
    >>> repeat_factor(SynthEvalConfig(equal_steps=False), rows=100, real_rows=4000)
    1
    """
    return max(1, -(-real_rows // rows)) if config.equal_steps else 1


def repeated(corpus: "Corpus", times: int, *, seed: int) -> "Corpus":
    """``corpus`` repeated ``times`` times, rows shuffled (ids repeat; a training set only)."""
    from raypriv.data import Corpus

    if times == 1:
        return corpus
    ds = corpus.ds.union(*[corpus.ds] * (times - 1)).random_shuffle(seed=seed).materialize()
    return Corpus(ds=ds, info=dataclasses.replace(corpus.info, num_rows=corpus.info.num_rows * times))


def _train(train, test, config: SynthEvalConfig, resources, runs: str, progress, what: str, **distill) -> dict:
    from raypriv.classifier.train import train_victim_payload

    t0 = time.time()
    res = train_victim_payload(train, test, config=config.victim, resources=resources, storage_path=runs, **distill)
    progress(f"  {what}: test accuracy {res['test_acc']:.2%} ({time.time() - t0:.0f}s)")
    return res


def _nearest_section(synthetic, real_train, config: SynthEvalConfig, resources, out_dir: str, progress) -> dict:
    from raypriv.similarity import psnr_per_image, ssim_per_image, summarize

    k = max(1, config.nearest_max // synthetic.info.num_classes)
    sample = first_per_class(synthetic, k).ds.take_all()
    images = np.stack([r["image"] for r in sample])
    progress(f"nearest real image for {len(images):,} synthetic images over {real_train.info.num_rows:,} real ones")
    ids, real_images, l2 = nearest_real(images, real_train, resources=resources)
    ssims = ssim_per_image(images, np.asarray(real_images)).tolist()
    psnrs = psnr_per_image(images, np.asarray(real_images)).tolist()
    if config.grid:
        order = np.argsort(ssims)[::-1][: config.grid]   # the most similar pairs: the worst case
        _save_pairs(images[order], real_images[order], [r["label"] for r in sample], order,
                    [ssims[i] for i in order], os.path.join(out_dir, "nearest.png"))
    return {"searched": len(images), "ssim": summarize(ssims), "psnr_db": summarize(psnrs), "l2": summarize(l2),
            "exact_copies": int(sum(p >= 100.0 for p in psnrs)),
            "most_similar": [{"synthetic": str(sample[i]["id"]), "real": str(ids[i]), "ssim": ssims[i]}
                             for i in np.argsort(ssims)[::-1][:5]]}


def _save_pairs(synth, real, labels, order, ssims, path: str) -> str:
    from matplotlib.figure import Figure

    from raypriv.files import save_figure

    fig = Figure(figsize=(1.3 * len(synth) + 0.8, 3.0), dpi=100)
    axes = fig.subplots(2, len(synth), squeeze=False)
    for j in range(len(synth)):
        for i, img in enumerate((synth[j], real[j])):
            ax = axes[i][j]
            ax.imshow(img[..., 0] if img.shape[-1] == 1 else img, cmap="gray", vmin=0, vmax=255,
                      interpolation="nearest")
            ax.set_xticks([]), ax.set_yticks([])
        axes[0][j].set_title(f"c{labels[order[j]]} SSIM {ssims[j]:.2f}", fontsize=7)
    axes[0][0].set_ylabel("synthetic", fontsize=8)
    axes[1][0].set_ylabel("nearest real", fontsize=8)
    return save_figure(fig, path)


def _mia(payloads: dict, members: "Corpus", nonmembers: "Corpus", resources) -> dict:
    from raypriv.synth.metrics import attack_auc

    losses = per_example_losses(payloads, members, nonmembers, resources=resources)
    return {name: attack_auc(members=m, nonmembers=n) for name, (m, n) in losses.items()}


def format_table(report: dict) -> str:
    """The report as a short text table."""
    lines = [f"{'trained on':<34} {'rows':>7} {'test acc':>9} {'vs real':>8}"]
    for u in report["utility"]:
        what = "real training set" if u["train_set"] == "real" else f"synthetic, {u['images_per_class']} per class"
        what += ", teacher labels" if u.get("labels") == "teacher" else ""
        rel = f"{u['relative_to_real']:.0%}" if "relative_to_real" in u else ""
        lines.append(f"{what:<34} {u['rows']:>7,} {u['test_acc']:>9.2%} {rel:>8}")
    nr = report.get("nearest_real")
    if nr:
        lines.append(f"nearest real image: SSIM median {nr['ssim']['median']:.3f}, max {nr['ssim']['max']:.3f}; "
                     f"PSNR median {nr['psnr_db']['median']:.1f} dB; exact copies {nr['exact_copies']}")
    for name, m in (report.get("membership_inference") or {}).items():
        lines.append(f"membership inference vs {name.replace('_', '-')} model: AUC {m['auc']:.3f}, "
                     f"TPR at {m['fpr']:.0%} FPR {m['tpr_at_fpr']:.2%}")
    return "\n".join(lines)
