"""Helpers shared by the benchmark scripts (not part of the library)."""
from __future__ import annotations

import dataclasses
import json
import os
import time

import numpy as np

CIFAR_SUBSET = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "cifar10-subset")
CIFAR_TEST_BATCH = "data_batch_5"   # held out: the 761 images of the fifth training batch


def subset(corpus, predicate):
    """Rows of ``corpus`` whose id satisfies ``predicate``, as a new materialized corpus."""
    from raypriv.data import Corpus

    ds = corpus.ds.filter(lambda r: predicate(r["id"])).materialize()
    return Corpus(ds=ds, info=dataclasses.replace(corpus.info, num_rows=ds.count()))


def load_benchmark_corpus(name: str):
    """(train, test) for a benchmark dataset: ``mnist5k`` (its fixed split) or ``cifar10-subset``
    (the shared 3,805 real CIFAR-10 images; ``data_batch_5`` held out as the test set)."""
    from raypriv.data import load_corpus

    if name == "cifar10-subset":
        if not os.path.isdir(CIFAR_SUBSET):
            raise SystemExit(f"{CIFAR_SUBSET} not found (benchmarks need ../shared beside the checkout)")
        full = load_corpus(f"cifar10:{CIFAR_SUBSET}", split="all")
        return (subset(full, lambda i: CIFAR_TEST_BATCH not in i), subset(full, lambda i: CIFAR_TEST_BATCH in i))
    return load_corpus(name, split="train"), load_corpus(name, split="test")


#: Share of the training split held out as the validation split (see ``evaluation_split``).
VALIDATION_FRACTION = 0.2


def add_holdout_args(parser) -> None:
    """``--holdout validation|test``: where a benchmark measures (settings are chosen on validation)."""
    parser.add_argument("--holdout", default="validation", choices=["validation", "test"],
                        help="measure on a validation split cut from the training data (default: choose settings "
                             "here) or on the test split (once, for the settings chosen on validation)")
    parser.add_argument("--validation-fraction", type=float, default=VALIDATION_FRACTION,
                        help="share of the training split held out as validation")


def evaluation_split(name: str, args):
    """(train, held_out) for a benchmark: with ``--holdout validation`` the training split cut in two
    (:func:`raypriv.data.holdout.holdout`), with ``--holdout test`` the full training and test splits."""
    from raypriv.data.holdout import holdout

    train, test = load_benchmark_corpus(name)
    if args.holdout == "test":
        print(f"{name}: measuring on the TEST split ({test.info.num_rows} rows): do this once, for settings "
              "chosen with --holdout validation", flush=True)
        return train, test
    rest, val = holdout(train, fraction=args.validation_fraction)
    print(f"{name}: measuring on a validation split cut from training ({rest.info.num_rows} train / "
          f"{val.info.num_rows} validation); the test split is not read", flush=True)
    return rest, val


def synthetic_corpus(n: int, *, size: int = 16, channels: int = 3, num_classes: int = 10, seed: int = 0):
    """``n`` random images generated on Ray workers (the driver never holds them)."""
    import ray

    from raypriv.data import Corpus, CorpusInfo

    def make(batch):
        ids = batch["id"]
        rng = np.random.default_rng(seed + int(ids[0]))
        return {"id": np.array([f"synth/{i:07d}" for i in ids]),
                "label": (ids % num_classes).astype(np.int64),
                "image": rng.integers(0, 256, size=(len(ids), size, size, channels), dtype=np.uint8)}

    ds = ray.data.range(n, override_num_blocks=max(2, n // 2500)).map_batches(make, batch_format="numpy")
    info = CorpusInfo(source=f"synthetic:{n}", split="train", num_classes=num_classes,
                      image_shape=(size, size, channels), class_names=tuple(map(str, range(num_classes))), num_rows=n)
    return Corpus(ds=ds.materialize(), info=info)


def save_result(name: str, result: dict, out_dir: str = "bench-out", path: str | None = None) -> str:
    """Write ``result`` as JSON; pass the returned ``path`` back to rewrite the same file."""
    os.makedirs(out_dir, exist_ok=True)
    path = path or os.path.join(out_dir, f"{name}-{time.strftime('%Y%m%d-%H%M%S')}.json")
    with open(path, "w") as f:
        json.dump(result, f, indent=1, default=str)
    return path
