"""Every validation error names the offending item; resize makes mixed sizes acceptable."""
import json
import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.data.data_helpers import write_png
from raypriv.data import load_corpus
from raypriv.errors import DataError

pytestmark = pytest.mark.usefixtures("ray_local")


def _png_bytes(arr):
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.asarray(arr, np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def _write_parquet(path, ids, labels, images, manifest=None):
    os.makedirs(path, exist_ok=True)
    t = pa.table({"id": ids, "label": pa.array(labels, pa.int64()),
                  "image": pa.array([_png_bytes(i) for i in images], pa.binary())})
    pq.write_table(t, os.path.join(path, f"part-{len(os.listdir(path))}.parquet"))
    if manifest is not None:
        with open(os.path.join(path, "manifest.json"), "w") as f:
            json.dump(manifest, f)


def test_truncated_png_named(tmp_path):
    for k in range(3):
        write_png(tmp_path / "a" / f"{k}.png", np.full((8, 8, 3), k * 40))
    bad = tmp_path / "a" / "1.png"
    bad.write_bytes(bad.read_bytes()[:40])
    with pytest.raises(DataError, match=r"a/1\.png.*cannot decode image") as e:
        load_corpus(f"imagefolder:{tmp_path}")
    assert e.value.item == "a/1.png"
    assert "RayTaskError" not in str(e.value)


def test_mixed_sizes_named_and_resize(tmp_path):
    write_png(tmp_path / "a" / "small.png", np.zeros((8, 8, 3)))
    write_png(tmp_path / "b" / "large.png", np.zeros((10, 12, 3)))
    with pytest.raises(DataError, match=r"mixed image sizes") as e:
        load_corpus(f"imagefolder:{tmp_path}")
    msg = str(e.value)
    assert "8x8x3" in msg and "10x12x3" in msg
    assert "a/small.png" in msg and "b/large.png" in msg and "resize" in msg
    c = load_corpus(f"imagefolder:{tmp_path}", resize=9)
    assert c.info.image_shape == (9, 9, 3) and c.info.num_rows == 2


def test_mixed_channels_named_even_with_resize(tmp_path):
    write_png(tmp_path / "a" / "gray.png", np.zeros((8, 8)))
    write_png(tmp_path / "b" / "rgb.png", np.zeros((8, 8, 3)))
    for resize in (None, 6):
        with pytest.raises(DataError, match="mixed channel counts") as e:
            load_corpus(f"imagefolder:{tmp_path}", resize=resize)
        msg = str(e.value)
        assert "grayscale" in msg and "RGB" in msg
        assert "a/gray.png" in msg and "b/rgb.png" in msg


def test_label_out_of_range_in_parquet(tmp_path):
    imgs = [np.zeros((4, 4, 3))] * 3
    _write_parquet(tmp_path, ["r0", "r1", "r2"], [0, 5, 1], imgs,
                   manifest={"num_classes": 3, "class_names": ["a", "b", "c"]})
    with pytest.raises(DataError, match=r"r1: label 5 out of range \[0, 3\)"):
        load_corpus(f"parquet:{tmp_path}")


def test_negative_label_without_manifest(tmp_path):
    _write_parquet(tmp_path, ["r0", "r1"], [0, -1], [np.zeros((4, 4, 3))] * 2)
    with pytest.raises(DataError, match=r"r1: label -1 out of range"):
        load_corpus(f"parquet:{tmp_path}")


def test_parquet_infers_classes_and_skips_checks(tmp_path):
    _write_parquet(tmp_path, ["r0", "r1"], [0, 3], [np.zeros((4, 4, 3))] * 2)
    c = load_corpus(f"parquet:{tmp_path}")
    assert c.info.num_classes == 4 and c.info.class_names == ("0", "1", "2", "3")
    c = load_corpus(f"parquet:{tmp_path}", validate=False)
    assert c.info.num_classes == 4 and c.info.num_rows == 2


def test_parquet_missing_column_named(tmp_path):
    pq.write_table(pa.table({"id": ["a"], "label": [0]}), str(tmp_path / "x.parquet"))
    with pytest.raises(DataError, match="missing column.*image"):
        load_corpus(f"parquet:{tmp_path}")


def test_empty_folder_names_source(tmp_path):
    (tmp_path / "cat").mkdir()
    (tmp_path / "dog").mkdir()
    with pytest.raises(DataError, match=f"imagefolder:{tmp_path}.*empty"):
        load_corpus(f"imagefolder:{tmp_path}")
    (tmp_path / "p").mkdir()
    with pytest.raises(DataError, match="parquet:.*empty"):
        load_corpus(f"parquet:{tmp_path / 'p'}")


def test_duplicate_ids_named(tmp_path):
    img = [np.zeros((4, 4, 3))]
    _write_parquet(tmp_path / "one", ["x/1", "x/2", "x/1"], [0, 1, 0], img * 3)
    with pytest.raises(DataError, match=r"x/1: duplicate id"):
        load_corpus(f"parquet:{tmp_path / 'one'}")
    # across files (blocks)
    _write_parquet(tmp_path / "two", ["y/1", "y/2"], [0, 1], img * 2)
    _write_parquet(tmp_path / "two", ["y/3", "y/2"], [0, 1], img * 2)
    with pytest.raises(DataError, match=r"y/2: duplicate id"):
        load_corpus(f"parquet:{tmp_path / 'two'}")
