"""Helpers shared by the unlearnable tests."""


def small_corpus(name: str, n: int, split: str = "train"):
    """The first ``n`` rows of an embedded corpus, materialized (keeps Ray tests fast)."""
    from raypriv.data import load_corpus

    return load_corpus(name, split=split).head(n)


def rows_by_id(ds) -> dict:
    return {r["id"]: r for r in ds.take_all()}


FAST = dict(surrogate="tiny_cnn", pgd_steps=3, train_steps=3, train_batch_size=64, pgd_batch_size=64)
