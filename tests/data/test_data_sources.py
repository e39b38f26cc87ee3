"""Loading corpora from each built-in source: shapes, splits, ids, exact values."""
import numpy as np
import pytest

from tests.data.data_helpers import rows_by_id, write_cifar, write_imagefolder, write_png
from raypriv.data import Corpus, CorpusInfo, list_sources, load_corpus, register_source
from raypriv.errors import ConfigError, DataError

pytestmark = pytest.mark.usefixtures("ray_local")


def test_list_sources():
    srcs = {s.name: s for s in list_sources()}
    assert {"digits", "mnist5k", "cifar10", "imagefolder", "parquet"} <= set(srcs)
    assert srcs["cifar10"].takes_path and not srcs["digits"].takes_path
    assert "all" in srcs["cifar10"].splits
    assert all(s.description for s in srcs.values())


def test_bad_specs():
    with pytest.raises(ConfigError, match="unknown source 'nope'"):
        load_corpus("nope")
    with pytest.raises(ConfigError, match="needs a path"):
        load_corpus("cifar10")
    with pytest.raises(ConfigError, match="takes no path"):
        load_corpus("digits:/x")
    with pytest.raises(ConfigError, match="split"):
        load_corpus("digits", split="val")
    with pytest.raises(ConfigError, match="resize"):
        load_corpus("digits", resize=0)


def test_digits_splits():
    train = load_corpus("digits", split="train")
    test = load_corpus("digits", split="test")
    assert train.info.num_rows == 1437 and test.info.num_rows == 360
    assert train.info.image_shape == (8, 8, 1) and train.info.num_classes == 10
    assert train.info.source == "digits" and train.info.split == "train"
    tr_ids = set(train.ds.select_columns(["id"]).to_pandas()["id"])
    te_ids = set(test.ds.select_columns(["id"]).to_pandas()["id"])
    assert not tr_ids & te_ids and len(tr_ids) == 1437
    assert "digits/train/00000" in tr_ids and "digits/test/00359" in te_ids
    row = test.ds.take(1)[0]
    assert row["image"].dtype == np.uint8 and row["image"].shape == (8, 8, 1)
    assert row["image"].max() <= 255 and row["image"].max() > 16  # scaled from 0..16


def test_mnist5k_splits_and_resize():
    test = load_corpus("mnist5k", split="test")
    assert test.info.num_rows == 1000 and test.info.image_shape == (28, 28, 1)
    small = load_corpus("mnist5k", split="test", resize=14)
    assert small.info.image_shape == (14, 14, 1)
    # the split is fixed: same ids and labels each time
    a = test.ds.select_columns(["id", "label"]).to_pandas().sort_values("id")
    b = small.ds.select_columns(["id", "label"]).to_pandas().sort_values("id")
    assert a["id"].tolist() == b["id"].tolist() and a["label"].tolist() == b["label"].tolist()
    assert np.bincount(a["label"], minlength=10).min() >= 80  # stratified


def test_cifar10_round_trip(cifar_dir):
    root, files = cifar_dir
    # the directory holding cifar-10-batches-py, or that directory itself
    for path in (root, root / "cifar-10-batches-py"):
        c = load_corpus(f"cifar10:{path}", split="train")
        assert c.info.num_rows == 40 and c.info.image_shape == (32, 32, 3)
        assert c.info.class_names[0] == "airplane" and c.info.num_classes == 10
    rows = rows_by_id(c)
    for name in ("data_batch_1", "data_batch_2"):
        data, labels = files[name]
        for k in range(len(labels)):
            label, img = rows[f"cifar10/{name}/{k:05d}"]
            assert label == labels[k]
            i, j, ch = k % 32, (7 * k) % 32, k % 3
            assert img[i, j, ch] == data[k, ch * 1024 + i * 32 + j]
            expected = data[k].reshape(3, 32, 32).transpose(1, 2, 0)
            np.testing.assert_array_equal(img, expected)
    test = load_corpus(f"cifar10:{root}", split="test")
    assert test.info.num_rows == 20
    assert load_corpus(f"cifar10:{root}", split="all").info.num_rows == 60


def test_cifar10_subset_without_test_batch(tmp_path):
    write_cifar(tmp_path, n=5, batches=("data_batch_3",), meta=False)
    c = load_corpus(f"cifar10:{tmp_path}", split="all")
    assert c.info.num_rows == 5 and c.info.class_names[-1] == "truck"
    with pytest.raises(DataError, match="no 'test_batch'.*split='train' or split='all'"):
        load_corpus(f"cifar10:{tmp_path}", split="test")


def test_cifar10_truncated_batch_named(tmp_path):
    write_cifar(tmp_path, n=5, batches=("data_batch_1", "data_batch_2"))
    p = tmp_path / "cifar-10-batches-py" / "data_batch_2"
    p.write_bytes(p.read_bytes()[:1000])
    with pytest.raises(DataError, match="data_batch_2.*cannot read CIFAR-10 batch"):
        load_corpus(f"cifar10:{tmp_path}")


def test_imagefolder(tmp_path):
    expected = write_imagefolder(tmp_path / "train", classes=("cat", "dog", "emu"), per_class=2)
    write_imagefolder(tmp_path / "test", classes=("cat", "dog", "emu"), per_class=1, seed=1)
    (tmp_path / "train" / "cat" / "notes.txt").write_text("not an image")
    c = load_corpus(f"imagefolder:{tmp_path}", split="train")
    assert c.info.class_names == ("cat", "dog", "emu") and c.info.num_rows == 6
    assert c.info.image_shape == (8, 8, 3)
    rows = rows_by_id(c)
    assert set(rows) == {f"train/{rel}" for rel in expected}
    for rel, (label, arr) in expected.items():
        got_label, got = rows[f"train/{rel}"]
        assert got_label == label
        np.testing.assert_array_equal(got, arr)
    assert load_corpus(f"imagefolder:{tmp_path}", split="test").info.num_rows == 3


def test_imagefolder_without_train_dir_and_grayscale(tmp_path):
    write_png(tmp_path / "a" / "x.PNG", np.full((5, 6), 7))
    write_png(tmp_path / "b" / "sub" / "y.png", np.full((5, 6), 9))
    c = load_corpus(f"imagefolder:{tmp_path}")
    assert c.info.image_shape == (5, 6, 1)
    rows = rows_by_id(c)
    assert rows["a/x.PNG"][0] == 0 and rows["b/sub/y.png"][0] == 1
    assert int(rows["b/sub/y.png"][1][0, 0, 0]) == 9
    with pytest.raises(DataError, match="test"):
        load_corpus(f"imagefolder:{tmp_path}", split="test")


def test_register_custom_source():
    import pyarrow as pa
    import ray
    from ray.data.extensions import ArrowTensorArray

    @register_source("tinytest", description="two images", splits=("train",))
    def _tiny(arg, *, split, download):
        imgs = np.zeros((2, 4, 4, 1), np.uint8)
        t = pa.table({"id": ["t/0", "t/1"], "label": pa.array([0, 1], pa.int64()),
                      "image": ArrowTensorArray.from_numpy(imgs)})
        info = CorpusInfo(source="tinytest", split=split, num_classes=2, image_shape=(4, 4, 1),
                          class_names=("a", "b"), num_rows=2)
        return Corpus(ds=ray.data.from_arrow(t), info=info)

    assert "tinytest" in {s.name for s in list_sources()}
    c = load_corpus("tinytest")
    assert c.info.num_rows == 2 and c.info.class_names == ("a", "b")


def test_parquet_tensor_column(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq
    from ray.data.extensions import ArrowTensorArray

    imgs = np.arange(2 * 5 * 4 * 3, dtype=np.uint8).reshape(2, 5, 4, 3)
    t = pa.table({"id": ["p/0", "p/1"], "label": pa.array([1, 0], pa.int64()),
                  "image": ArrowTensorArray.from_numpy(imgs)})
    pq.write_table(t, str(tmp_path / "a.parquet"))
    c = load_corpus(f"parquet:{tmp_path}", split="all")
    assert c.info.image_shape == (5, 4, 3) and c.info.num_classes == 2
    rows = rows_by_id(c)
    np.testing.assert_array_equal(rows["p/1"][1], imgs[1])
    assert rows["p/0"][0] == 1


def test_subsample_keeps_every_class_and_is_order_independent(ray_local):
    from raypriv.data import load_corpus

    corpus = load_corpus("digits", split="train")
    half = corpus.subsample(0.5, seed=1)
    again = type(corpus)(ds=corpus.ds.random_shuffle(seed=3), info=corpus.info).subsample(0.5, seed=1)
    ids = sorted(r["id"] for r in half.ds.select_columns(["id"]).take_all())
    assert ids == sorted(r["id"] for r in again.ds.select_columns(["id"]).take_all())
    assert 0.4 * corpus.info.num_rows < half.info.num_rows < 0.6 * corpus.info.num_rows
    assert len({r["label"] for r in half.ds.select_columns(["label"]).take_all()}) == corpus.info.num_classes
