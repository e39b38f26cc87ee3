"""``raypriv mtk predict``: per-task predictions, with the holder's keys applied or without.

Without a key file a secured task's answer carries no information about the truth (that is
the point); with the model's key file every secured task answers truthfully. In Python,
:func:`predict` labels an in-memory uint8 batch; :func:`predict_corpus` labels a corpus through
the Ray Data actor pool.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from raypriv.data.corpus import Corpus
    from raypriv.mtk.keys import KeySet
    from raypriv.mtk.train import MtkModel
    from raypriv.runtime import ResourceSpec


#: The predicted class of a secured task that answers "locked" (its key is absent).
LOCKED = -1


def _by_task(flat: np.ndarray, model: "MtkModel") -> dict[str, np.ndarray]:
    from raypriv.mtk.evaluate import answers

    return dict(zip(model.layout.names, answers(flat, model.layout)))


def predict(model: "MtkModel", images: np.ndarray, keys: "KeySet | None" = None) -> dict[str, np.ndarray]:
    """``{task: predicted class}`` for uint8 ``(B, H, W, C)`` images, with all of ``keys`` added;
    a secured task without its key answers :data:`LOCKED` (models trained with ``target="locked"``)."""
    import torch

    from raypriv.errors import ConfigError
    from raypriv.models import to_float_nchw

    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4 or tuple(images.shape[1:]) != model.image_shape:
        raise ConfigError("images", f"must be uint8 (B, H, W, C) with H, W, C = {model.image_shape} (the model's), "
                                    f"got {images.dtype} {tuple(images.shape)}")
    if keys is not None:
        model.check_keys(keys)
        images = keys.apply(images)
    net = model.build("cpu")
    with torch.no_grad():
        flat = torch.cat(net(to_float_nchw(torch.from_numpy(np.ascontiguousarray(images)))), dim=1).numpy()
    return _by_task(flat, model)


def predict_corpus(model: "MtkModel", corpus: "Corpus", keys: "KeySet | None", *, resources: "ResourceSpec") -> dict:
    """``{"id": ids, task: predicted classes ...}`` for every row of ``corpus``, ordered by id."""
    from raypriv.mtk.evaluate import MtkScorer
    from raypriv.runtime.execute import run
    from raypriv.runtime.pool import pool_map

    model.check_corpus(corpus, labels=False)
    if keys is not None:
        model.check_keys(keys)
    ds = pool_map(corpus.ds, MtkScorer, resources=resources, batch_size=256,
                  shared={"payload": model.payload, "conditions": {"chosen": keys.patterns() if keys else []}},
                  options={"columns": ("label",)})
    rows = run(ds, lambda d: d.take_all())
    rows.sort(key=lambda r: r["id"])
    flat = np.stack([r["logits:chosen"] for r in rows]) if rows else np.zeros((0, sum(model.layout.head_sizes)))
    return {"id": np.array([r["id"] for r in rows]), **_by_task(flat, model)}


def write_predictions(path: str, preds: dict, model: "MtkModel") -> str:
    """A CSV with ``id`` and, per task, the predicted class name (written atomically)."""
    import csv
    import io

    from raypriv.files import local_dir, write_text_atomic

    names = model.manifest.get("class_names", {})
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["id", *model.layout.names])
    for i, row_id in enumerate(preds["id"]):
        w.writerow([row_id, *(_name(names.get(t), int(preds[t][i])) for t in model.layout.names)])
    return write_text_atomic(local_dir(path, what="output"), buf.getvalue())


def _name(class_names, k: int) -> str:
    if k == LOCKED:
        return "locked"
    return str(class_names[k]) if class_names and k < len(class_names) else str(k)
