"""The MTK training set: each image expanded into the keyed and un-keyed variants the
objective needs, as a Ray Data transform (:func:`expand_corpus`).

Every source row becomes, with ids ``<id>#plain``, ``<id>#key<k>`` and ``<id>#decoy<k>``:

* one **un-keyed** copy: the image as it is;
* ``keyed_copies`` **keyed** copies: the image with the keys of a random non-empty subset of
  the secured tasks added (every subset equally likely);
* ``decoy_copies`` **decoy** copies: the image with random *wrong* keys of the same form (a
  fresh pattern on the support of each chosen task's key), which teach the network that a key
  of the right form and amplitude is not enough: only the secret pattern unlocks a task.

Each row keeps its true labels and gains ``key_mask``: bit i set when the i-th secured task's
key is in the image, i.e. when that task's target is its true label (the training loop draws
the uninformative targets of the others afresh every epoch). The subsets and decoys are pure
functions of ``(seed, id)`` (:func:`raypriv.hashing.id_rng`), so the expansion is the same on
every run and worker; the keys travel to the transform's tasks through the object store and
are written nowhere.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from raypriv.hashing import id_rng
from raypriv.mtk.keys import KeySet, KeySpec, apply_patterns

if TYPE_CHECKING:  # pragma: no cover
    from raypriv.data.corpus import Corpus

#: The column that says which secured tasks' keys an expanded row carries.
KEY_MASK = "key_mask"
#: 1 on decoy rows (random wrong keys), 0 elsewhere.
DECOY = "decoy"


def subset_mask(row_id: str, *, copy: int, secured: int, seed: int) -> int:
    """The key subset of keyed copy ``copy`` of ``row_id``: a bitmask in ``[1, 2**secured)``."""
    return int(id_rng(row_id, seed=seed, salt=f"mtk-subset-{copy}").integers(1, 1 << secured))


def decoy_patterns(row_id: str, *, copy: int, spec: KeySpec, image_shape, secured: int, seed: int) -> list:
    """The wrong keys of decoy copy ``copy`` of ``row_id``: random patterns of ``spec``'s form on
    the supports of a random non-empty subset of the secured tasks."""
    rng = id_rng(row_id, seed=seed, salt=f"mtk-decoy-{copy}")
    mask = int(rng.integers(1, 1 << secured))
    return [spec.random_pattern(i, image_shape, rng=rng) for i in range(secured) if mask >> i & 1]


def expand_batch(batch: dict, *, patterns: list, spec: dict, keyed_copies: int, decoy_copies: int,
                 seed: int) -> dict:
    """map_batches UDF: every row in its variants (see the module docstring)."""
    key_spec = KeySpec(**spec)
    images = np.asarray(batch["image"], dtype=np.uint8)
    ids = [str(x) for x in batch["id"]]
    shape = images.shape[1:]
    secured = len(patterns)
    out_ids, out_images, masks, decoys, source = [], [], [], [], []
    for i, row_id in enumerate(ids):
        variants = [("plain", images[i], 0, 0)]
        for k in range(keyed_copies):
            m = subset_mask(row_id, copy=k, secured=secured, seed=seed)
            keyed = apply_patterns(images[i][None], [patterns[j] for j in range(secured) if m >> j & 1])[0]
            variants.append((f"key{k}", keyed, m, 0))
        for k in range(decoy_copies):
            wrong = decoy_patterns(row_id, copy=k, spec=key_spec, image_shape=shape, secured=secured, seed=seed)
            variants.append((f"decoy{k}", apply_patterns(images[i][None], wrong)[0], 0, 1))
        for tag, img, m, d in variants:
            out_ids.append(f"{row_id}#{tag}")
            out_images.append(img)
            masks.append(m)
            decoys.append(d)
            source.append(i)
    source = np.asarray(source, dtype=np.int64)
    rest = {k: np.asarray(v)[source] for k, v in batch.items() if k not in ("id", "image")}
    return {"id": np.array(out_ids, dtype=object), "image": np.stack(out_images), **rest,
            KEY_MASK: np.asarray(masks, dtype=np.int64), DECOY: np.asarray(decoys, dtype=np.int8)}


def expand_corpus(corpus: "Corpus", keys: KeySet, *, keyed_copies: int, decoy_copies: int, seed: int):
    """The expanded training set of ``corpus`` as a (lazy) Ray Dataset."""
    return corpus.ds.map_batches(
        expand_batch, batch_size=256, batch_format="numpy",
        fn_kwargs={"patterns": keys.patterns(), "spec": keys.spec.to_dict(), "keyed_copies": keyed_copies,
                   "decoy_copies": decoy_copies, "seed": seed})
