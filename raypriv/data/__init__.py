"""raypriv's data layer: image corpora as Ray Datasets, loaded, validated and written.

A corpus is a Ray Dataset of rows ``{id: str, label: int64, image: uint8 HxWxC}`` with
a :class:`CorpusInfo`. Ids are stable and unique (``mnist5k/train/00042``,
``cifar10/data_batch_1/00017``, ``train/cat/001.png``) so they survive shuffles,
retries and joins. Sources are named by a spec, ``name`` or ``name:PATH``:

* ``digits``, ``mnist5k``: small embedded sets (no download);
* ``cifar10:PATH``: CIFAR-10 python-format batches (subsets allowed);
* ``imagefolder:PATH``: one folder per class;
* ``parquet:PATH``: Parquet ``id/label/image`` files such as raypriv's own outputs.

Example::

    import ray
    from raypriv.data import load_corpus, write_corpus, read_manifest
    from raypriv.manifest import build_manifest

    ray.init()
    corpus = load_corpus("mnist5k", split="train")           # validated, materialized
    corpus.info.image_shape, corpus.info.num_rows             # ((28, 28, 1), 4000)
    fp = corpus.fingerprint()                                 # order-independent hash
    out = write_corpus(corpus, "out/mnist-copy",
                       manifest=build_manifest(method="copy", input_fingerprint=fp))
    read_manifest(out)["rows"]                                # 4000
    load_corpus("parquet:" + out).fingerprint() == fp         # True

Errors name the offending item: :class:`~raypriv.errors.DataError` for bad data
(corrupt files, mixed sizes or channels, labels out of range, empty corpora, duplicate
ids), :class:`~raypriv.errors.ConfigError` for bad arguments. :func:`holdout` cuts a validation
split from a training corpus (choose settings there, not on the test split).
"""
from __future__ import annotations

from raypriv.data.corpus import Corpus, CorpusInfo
from raypriv.data.holdout import holdout
from raypriv.data.sources import SourceInfo, list_sources, load_corpus, register_source
from raypriv.data.validate import validate_corpus
from raypriv.data.writer import export_imagefolder, write_corpus
from raypriv.manifest import read_manifest

__all__ = [
    "Corpus",
    "CorpusInfo",
    "SourceInfo",
    "export_imagefolder",
    "holdout",
    "list_sources",
    "load_corpus",
    "read_manifest",
    "register_source",
    "validate_corpus",
    "write_corpus",
]
