"""Whether a corpus's class list was declared by its source or inferred from its labels (a
private run must not publish a class count computed from private rows)."""
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from raypriv.data import load_corpus

pytestmark = pytest.mark.usefixtures("ray_local")


def _write_parquet(path, labels):
    path.mkdir(parents=True)
    images = np.zeros((len(labels), 4, 4, 1), dtype=np.uint8)
    table = pa.table({"id": [f"r{i}" for i in range(len(labels))], "label": pa.array(labels, type=pa.int64()),
                      "image": pa.FixedShapeTensorArray.from_numpy_ndarray(images)})
    pq.write_table(table, path / "part-0.parquet")


def test_classes_inferred_from_labels_are_marked_undeclared(tmp_path):
    _write_parquet(tmp_path / "bare", [0, 2, 1, 2])
    bare = load_corpus(f"parquet:{tmp_path / 'bare'}")
    assert bare.info.num_classes == 3 and not bare.info.classes_declared

    _write_parquet(tmp_path / "named", [0, 2, 1, 2])
    (tmp_path / "named" / "manifest.json").write_text(json.dumps({"class_names": ["a", "b", "c", "d"]}))
    named = load_corpus(f"parquet:{tmp_path / 'named'}")
    assert named.info.num_classes == 4 and named.info.classes_declared
    assert load_corpus("digits").info.classes_declared


def test_writing_a_corpus_does_not_turn_inferred_classes_into_declared_ones(tmp_path):
    from raypriv.data import write_corpus

    _write_parquet(tmp_path / "bare", [0, 1, 1])
    bare = load_corpus(f"parquet:{tmp_path / 'bare'}")
    out = write_corpus(bare, str(tmp_path / "copy"), manifest={"method": "copy"})
    back = load_corpus(f"parquet:{out}")
    assert back.info.num_classes == 2 and not back.info.classes_declared
    declared = write_corpus(load_corpus("digits", split="test"), str(tmp_path / "digits"), manifest={"method": "copy"})
    assert load_corpus(f"parquet:{declared}").info.classes_declared
