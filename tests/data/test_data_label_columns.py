"""Multi-task corpora: further label columns survive validation, shuffles, writes and reads,
the fingerprint covers them, and bad values are named."""
import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from raypriv.data import Corpus, load_corpus, read_manifest, write_corpus
from raypriv.data.corpus import LabelColumn
from raypriv.data.writer import encode_png
from raypriv.errors import ConfigError, DataError
from raypriv.manifest import build_manifest

pytestmark = pytest.mark.usefixtures("ray_local")


def _rows(corpus, *columns):
    return {r["id"]: (int(r["label"]), *(int(r[c]) for c in columns), np.asarray(r["image"]))
            for r in corpus.ds.take_all()}


def test_mnist5k_tasks_are_functions_of_the_digit():
    c = load_corpus("mnist5k-tasks", split="test")
    info = c.info
    assert info.label_name == "digit" and info.column_names() == ("parity", "ge5", "loop")
    assert [col.num_classes for col in info.label_columns] == [2, 2, 2]
    plain = {r["id"].split("/", 1)[1]: np.asarray(r["image"]) for r in load_corpus("mnist5k", split="test").ds.take_all()}
    rows = _rows(c, "parity", "ge5", "loop")
    assert len(rows) == 1000
    for row_id, (digit, parity, ge5, loop, img) in rows.items():
        assert parity == digit % 2 and ge5 == int(digit >= 5) and loop == int(digit in (0, 6, 8, 9))
        assert np.array_equal(img, plain[row_id.split("/", 1)[1]])


def test_mnist5k_pairs_left_digit_is_not_a_function_of_the_other_tasks():
    c = load_corpus("mnist5k-pairs", split="test")
    assert c.info.image_shape == (28, 56, 1) and c.info.label_name == "left_digit"
    plain = load_corpus("mnist5k", split="test").ds.take_all()
    by_index = {r["id"].rsplit("/", 1)[1]: (int(r["label"]), np.asarray(r["image"])) for r in plain}
    rows = _rows(c, "right_digit", "sum_ge10")
    lefts_given_others = {}
    rights_seen = []
    for row_id, (left, right, sum_ge10, img) in rows.items():
        own_label, own_image = by_index[row_id.rsplit("/", 1)[1]]
        assert left == own_label and np.array_equal(img[:, :28], own_image)   # image k on the left
        assert sum_ge10 == int(left + right >= 10)
        rights_seen.append(img[:, 28:].tobytes())
        lefts_given_others.setdefault((right, sum_ge10), set()).add(left)
    # every image appears once on the right too, and the unsecured tasks leave the left digit open
    assert sorted(rights_seen) == sorted(img.tobytes() for _, img in by_index.values())
    assert max(len(v) for v in lefts_given_others.values()) >= 5


def test_columns_survive_shuffle_write_and_read_and_the_fingerprint_covers_them(tmp_path):
    c = load_corpus("mnist5k-tasks", split="test").head(300)
    fp = c.fingerprint()
    assert fp != Corpus(ds=c.ds, info=load_corpus("mnist5k", split="test").info).fingerprint()
    shuffled = Corpus(ds=c.ds.random_shuffle(seed=3), info=c.info)
    assert shuffled.fingerprint() == fp
    out = write_corpus(shuffled, str(tmp_path / "tasks"), manifest=build_manifest(method="copy"))
    m = read_manifest(out)
    assert m["fingerprint"] == fp and m["label_name"] == "digit"
    assert [d["name"] for d in m["label_columns"]] == ["parity", "ge5", "loop"]
    back = load_corpus(f"parquet:{out}")
    assert back.info.label_columns == c.info.label_columns and back.info.label_name == "digit"
    assert back.fingerprint() == fp
    before, after = _rows(c, "parity", "ge5", "loop"), _rows(back, "parity", "ge5", "loop")
    assert before.keys() == after.keys()
    assert all(before[k][:4] == after[k][:4] and np.array_equal(before[k][4], after[k][4]) for k in before)

    def flip_parity(batch):   # nested: Ray pickles it by value
        return {**batch, "parity": 1 - np.asarray(batch["parity"])}

    flipped = Corpus(ds=c.ds.map_batches(flip_parity, batch_format="numpy"), info=c.info)
    assert flipped.fingerprint() != fp


def _user_parquet(root, *, extra: dict, n: int = 6, manifest: dict | None = None):
    rng = np.random.default_rng(0)
    os.makedirs(root, exist_ok=True)
    table = {"id": [f"img{k}" for k in range(n)], "label": [k % 2 for k in range(n)],
             "image": [encode_png(rng.integers(0, 256, (4, 4, 1), dtype=np.uint8)) for _ in range(n)], **extra}
    pq.write_table(pa.table(table), os.path.join(root, "part-0.parquet"))
    if manifest is not None:
        from raypriv.manifest import write_manifest

        write_manifest(str(root), manifest)
    return str(root)


def test_user_parquet_brings_its_own_integer_columns(tmp_path):
    path = _user_parquet(tmp_path / "own", extra={"smiling": [0, 1, 1, 0, 1, 0], "age_band": [3, 0, 2, 1, 2, 0],
                                                  "_note": [9] * 6, "caption": list("abcdef")})
    c = load_corpus(f"parquet:{path}")
    assert c.info.column_names() == ("smiling", "age_band")              # integers only, "_" names aside
    assert [col.num_classes for col in c.info.label_columns] == [2, 4]   # inferred as max + 1
    assert {r["id"]: int(r["age_band"]) for r in c.ds.take_all()}["img2"] == 2


def test_bad_label_column_values_are_named(tmp_path):
    declared = {"label_columns": [{"name": "smiling", "num_classes": 2}], "num_classes": 2}
    path = _user_parquet(tmp_path / "bad", extra={"smiling": [0, 1, 2, 0, 1, 0]}, manifest=declared)
    with pytest.raises(DataError, match=r"img2.*label column 'smiling': value 2 out of range \[0, 2\)"):
        load_corpus(f"parquet:{path}")
    negative = _user_parquet(tmp_path / "neg", extra={"smiling": [0, 1, 1, -1, 1, 0]})
    with pytest.raises(DataError, match=r"img3.*'smiling': value -1 out of range"):
        load_corpus(f"parquet:{negative}")
    missing = _user_parquet(tmp_path / "missing", extra={}, manifest=declared)
    with pytest.raises(DataError, match="names label column.*smiling.*files lack"):
        load_corpus(f"parquet:{missing}")


def test_label_column_names_are_checked():
    for bad in ("label", "image", "Parity", "1st", ""):
        with pytest.raises(ConfigError):
            LabelColumn(bad, 2)
    with pytest.raises(ConfigError, match="3 class names for 2 classes"):
        LabelColumn("parity", 2, ("a", "b", "c"))
