"""``raypriv dpvae evaluate``: how useful is a sampled synthetic set?

* **Downstream accuracy.** A fresh classifier (the evaluation harness's Ray Train victim
  recipe) is trained only on the synthetic images and tested on the real test set.
* **Fréchet distance in classifier feature space.** A classifier of the same recipe is
  trained on the *real training set*; the inputs of its last linear layer are its features.
  We fit a Gaussian to the features of the real test images and to those of the synthetic
  images and report the Fréchet distance between the two. This is **not** Inception-FID:
  the feature extractor is a small CNN trained on the private data's own domain, so values
  are comparable between runs of this report only.
* **Label agreement.** The share of synthetic images that this real-data classifier assigns
  to the label they were generated for: a conditional generator whose images do not look like
  their label teaches the downstream classifier the wrong thing, whatever its Fréchet distance.

Nothing here selects models or settings on the test set: every number is computed once,
after training, from the settings given.

**The report is not covered by ε.** The reference classifier (Fréchet features, label
agreement, the real-data accuracy) is trained without privacy on the real training data, and
the downstream accuracy is measured on the real test set: the report is for the data owner,
not for release (``report["privacy"]`` says so, and the CLI prints it).

Both classifiers default to :data:`raypriv.dpvae.config.VICTIM_DEFAULTS`: ``plain_cnn`` (no BatchNorm), Adam at
1e-3, constant rate, no augmentation; the recipe every DP-VAE setting was chosen with (on a
validation split). The evaluation harness's ``small_cnn`` does not transfer from generated to
real images (its BatchNorm statistics and global pooling fit the smooth samples), which would
measure the classifier, not the generator.
"""
from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from raypriv.errors import DataError
from raypriv.runtime.pool import PoolWorker

#: The picture of the samples, per class, beside real test images of the same class.
SAMPLES_PNG = "samples.png"
#: The manifest method of a finished DP-VAE sample evaluation.
EVALUATION_METHOD = "dpvae-evaluation"
from raypriv.classifier.config import VictimConfig

if TYPE_CHECKING:  # pragma: no cover
    from raypriv.models import ModelPayload
    from raypriv.data.corpus import Corpus
    from raypriv.runtime import ResourceSpec


#: What the report's ``privacy`` entry says: it is no release (see the module docstring).
REPORT_PRIVACY = {
    "covered_by_epsilon": False,
    "note": "computed with a classifier trained without privacy on the real training data and scored on the real "
            "test data; for the data owner only, do not release",
}
#: The classifier recipe of this report, unless the caller gives another (see the module docstring).
def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to feature rows ``a`` and ``b``:
    ``|μ₁ − μ₂|² + tr Σ₁ + tr Σ₂ − 2 tr (Σ₁^½ Σ₂ Σ₁^½)^½``.

    The last trace is taken from the eigenvalues of the symmetric PSD matrix
    ``Σ₁^½ Σ₂ Σ₁^½`` (tiny negative round-off clipped to 0), which equals ``tr sqrtm(Σ₁ Σ₂)``
    for covariance matrices. Unlike ``scipy.linalg.sqrtm(Σ₁ Σ₂)`` in the usual FID code, it needs
    no ``eps·I`` retry and prints no ``LinAlgWarning`` when a covariance is singular (fewer
    images than features, a feature that never fires), and it is exact there.

    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(4000, 3))
    >>> round(frechet_distance(x, x + [2.0, 0, 0]), 2)
    4.0
    """
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
    w, v = np.linalg.eigh(s1)
    root1 = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    inner = root1 @ s2 @ root1
    trace_covmean = np.sqrt(np.clip(np.linalg.eigvalsh((inner + inner.T) / 2), 0, None)).sum()
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * trace_covmean)


def last_linear_inputs(model, x):
    """The inputs of ``model``'s last ``nn.Linear`` layer for images ``x`` (its features), and
    the model's outputs (logits)."""
    import torch

    linear = [m for m in model.modules() if isinstance(m, torch.nn.Linear)][-1]
    seen = []
    handle = linear.register_forward_hook(lambda mod, inp, out: seen.append(inp[0].detach()))
    try:
        with torch.no_grad():
            logits = model(x)
    finally:
        handle.remove()
    return seen[0], logits


class _Features(PoolWorker):
    """Actor-pool worker: classifier features of a batch of images."""

    def setup(self, payload: dict) -> None:
        from raypriv.models import build_from_payload

        self.model = build_from_payload(payload, self.device).eval()

    def __call__(self, batch: dict) -> dict:
        import torch

        from raypriv.models import to_float_nchw

        x = to_float_nchw(torch.as_tensor(np.asarray(batch["image"]))).to(self.device)
        feats, logits = last_linear_inputs(self.model, x)
        return {"feature": feats.cpu().numpy().astype(np.float64),
                "agrees": logits.argmax(1).cpu().numpy() == np.asarray(batch["label"])}


def features(payload: "ModelPayload", corpus: "Corpus", *, resources: "ResourceSpec") -> tuple[np.ndarray, float]:
    """Feature rows of every image of ``corpus`` and the share of images the classifier assigns
    to their label (an actor-pool pass; the model is shipped once)."""
    from raypriv.runtime.execute import run
    from raypriv.runtime.pool import pool_map

    ds = pool_map(corpus.ds.select_columns(["image", "label"]), _Features, resources=resources, batch_size=512,
                  shared=payload)
    parts = run(ds, lambda d: list(d.iter_batches(batch_format="numpy", batch_size=None)))
    return np.concatenate([p["feature"] for p in parts]), float(np.concatenate([p["agrees"] for p in parts]).mean())


def evaluate_dpvae(*, synthetic: "Corpus", real_train: "Corpus", real_test: "Corpus", victim: VictimConfig,
                   resources: "ResourceSpec | None" = None, out_dir: str,
                   progress: Callable[[str], None] = print, reference: dict | None = None) -> dict:
    """Downstream accuracy and feature-space Fréchet distance of ``synthetic``; writes
    ``report.json`` and ``samples.png`` (samples per class beside real test images of the same
    class) into ``out_dir``. ``reference``: a previous result of
    :func:`reference_classifier` to reuse (the real-data classifier does not depend on the
    synthetic set)."""
    from raypriv.classifier.train import train_victim_payload
    from raypriv.figures import save_class_grid
    from raypriv.manifest import finish_report
    from raypriv.runtime import ResourceSpec

    resources = resources or ResourceSpec.auto()
    _check(synthetic, real_train, real_test)
    os.makedirs(out_dir, exist_ok=True)
    t0 = time.time()
    runs = os.path.join(out_dir, "runs")
    reference = reference or reference_classifier(real_train, real_test, victim=victim, resources=resources,
                                                  runs=runs, progress=progress)
    down = train_victim_payload(synthetic, real_test, config=victim, resources=resources, storage_path=runs)
    progress(f"classifier trained on {synthetic.info.num_rows:,} synthetic images: "
             f"real test accuracy {down['test_acc']:.2%}")
    synth_features, agreement = features(reference["payload"], synthetic, resources=resources)
    fd = frechet_distance(synth_features, reference["test_features"])
    progress(f"Fréchet distance (real-data classifier features, not Inception-FID): {fd:.3f}; the real-data "
             f"classifier assigns {agreement:.1%} of the synthetic images to their label")
    report: dict[str, Any] = {
        "synthetic": synthetic.info.source, "synthetic_rows": synthetic.info.num_rows,
        "real_train": real_train.info.source, "real_test": real_test.info.source,
        "real_test_split": real_test.info.split, "victim": victim,
        "downstream_test_acc": down["test_acc"], "real_data_test_acc": reference["test_acc"],
        "frechet_distance": fd, "label_agreement": agreement, "privacy": REPORT_PRIVACY,
        "frechet_reference": "real test set, features of a classifier trained on the real training set "
                             "(not Inception-FID)",
        "wall_time_s": time.time() - t0}
    report["samples_png"] = save_class_grid(
        [("DP-VAE samples", synthetic), ("real test images (not covered by ε)", real_test)],
        os.path.join(out_dir, SAMPLES_PNG), class_names=tuple(synthetic.info.class_names),
        title=f"{synthetic.info.source}: samples per class beside real images of the same class")
    finish_report(out_dir, report, method=EVALUATION_METHOD, params={"victim": victim}, files=(SAMPLES_PNG,))
    return report


def reference_classifier(real_train: "Corpus", real_test: "Corpus", *, victim: VictimConfig,
                         resources: "ResourceSpec", runs: str, progress: Callable[[str], None] = print) -> dict:
    """The classifier trained on the real training set, its test accuracy and its features
    of the real test set (the Fréchet reference)."""
    from raypriv.classifier.train import train_victim_payload

    ref = train_victim_payload(real_train, real_test, config=victim, resources=resources, storage_path=runs)
    progress(f"reference classifier on the real training set: test accuracy {ref['test_acc']:.2%}")
    return {**ref, "test_features": features(ref["payload"], real_test, resources=resources)[0]}


def _check(synthetic: "Corpus", real_train: "Corpus", real_test: "Corpus") -> None:
    for other in (real_train, real_test):
        if tuple(other.info.image_shape) != tuple(synthetic.info.image_shape) or \
                other.info.num_classes != synthetic.info.num_classes:
            raise DataError(f"images {tuple(other.info.image_shape)} with {other.info.num_classes} classes; the "
                            f"synthetic set has {tuple(synthetic.info.image_shape)} with "
                            f"{synthetic.info.num_classes}", item=other.info.source)
