"""write_corpus / export_imagefolder: round trips, manifests, checksums, atomicity."""
import hashlib
import os

import numpy as np
import pytest

from tests.data.data_helpers import rows_by_id, write_cifar
from raypriv.data import Corpus, export_imagefolder, load_corpus, read_manifest, write_corpus
from raypriv.data.writer import file_name
from raypriv.errors import ArtifactError, DataError
from raypriv.manifest import build_manifest

pytestmark = pytest.mark.usefixtures("ray_local")


@pytest.fixture
def cifar(tmp_path):
    write_cifar(tmp_path / "src", n=12, batches=("data_batch_1", "data_batch_2"))
    return load_corpus(f"cifar10:{tmp_path / 'src'}")


def _leftovers(parent):
    return [n for n in os.listdir(parent) if ".tmp-" in n or ".old-" in n]


def test_write_round_trip_and_manifest(cifar, tmp_path):
    out = str(tmp_path / "out" / "protected")
    m = build_manifest(method="copy", params={"eps": 0.5}, seed=3, input_fingerprint=cifar.fingerprint())
    assert write_corpus(cifar, out, manifest=m, num_shards=2) == out
    man = read_manifest(out)
    for key in ("method", "params", "seed", "input_fingerprint", "rows", "image_shape", "num_classes",
                "class_names", "files", "raypriv_version", "created_at", "wall_time_s", "fingerprint"):
        assert key in man, key
    assert man["method"] == "copy" and man["seed"] == 3 and man["params"] == {"eps": 0.5}
    assert man["rows"] == 24 and man["image_shape"] == [32, 32, 3] and man["num_classes"] == 10
    assert len(man["files"]) == 2
    listed = sorted(f for f in os.listdir(out) if f.endswith(".parquet"))
    assert listed == sorted(f["name"] for f in man["files"])
    for f in man["files"]:
        data = open(os.path.join(out, f["name"]), "rb").read()
        assert f["bytes"] == len(data) and f["sha256"] == hashlib.sha256(data).hexdigest()
    back = load_corpus("parquet:" + out)
    assert back.info.class_names == cifar.info.class_names and back.info.num_rows == 24
    a, b = rows_by_id(cifar), rows_by_id(back)
    assert a.keys() == b.keys()
    for k in a:
        assert a[k][0] == b[k][0]
        np.testing.assert_array_equal(a[k][1], b[k][1])
    assert man["fingerprint"] == back.fingerprint() == cifar.fingerprint()
    assert not _leftovers(tmp_path / "out")


def test_refuses_to_overwrite(cifar, tmp_path):
    out = tmp_path / "o"
    write_corpus(cifar, str(out), manifest={"method": "a"})
    with pytest.raises(ArtifactError, match="overwrite=True"):
        write_corpus(cifar, str(out), manifest={"method": "b"})
    assert read_manifest(str(out))["method"] == "a"
    write_corpus(cifar, str(out), manifest={"method": "b"}, overwrite=True)
    assert read_manifest(str(out))["method"] == "b"
    assert not _leftovers(tmp_path)
    (tmp_path / "empty").mkdir()  # an existing empty directory is fine
    write_corpus(cifar, str(tmp_path / "empty"), manifest={})


def test_failure_mid_write_leaves_nothing(cifar, tmp_path):
    def _explode_on_late_block(batch):  # nested: Ray pickles it by value
        for i in batch["id"]:
            if str(i).endswith("data_batch_2/00010"):
                raise DataError("cannot decode image (injected)", item=str(i))
        return batch

    bad = Corpus(ds=cifar.ds.map_batches(_explode_on_late_block, batch_size=4, batch_format="numpy"),
                 info=cifar.info)
    out = tmp_path / "res" / "protected"
    with pytest.raises(DataError, match=r"data_batch_2/00010: cannot decode image \(injected\)"):
        write_corpus(bad, str(out), manifest={}, num_shards=2)
    assert not out.exists()
    assert os.listdir(tmp_path / "res") == []
    # same for an export
    with pytest.raises(DataError, match="injected"):
        export_imagefolder(bad, str(out))
    assert os.listdir(tmp_path / "res") == []


def test_write_to_uri(cifar, tmp_path):
    uri = f"file://{tmp_path}/remote/out"
    write_corpus(cifar, uri, manifest={"method": "copy"}, num_shards=3)
    man = read_manifest(uri)
    assert man["rows"] == 24 and 1 <= len(man["files"]) <= 3
    back = load_corpus("parquet:" + uri)
    assert back.fingerprint() == cifar.fingerprint()
    with pytest.raises(ArtifactError):
        write_corpus(cifar, uri, manifest={})


def test_export_imagefolder_round_trip(cifar, tmp_path):
    out = str(tmp_path / "tree")
    assert export_imagefolder(cifar, out) == out
    assert sorted(d for d in os.listdir(out) if os.path.isdir(os.path.join(out, d))) == list(cifar.info.class_names)
    back = load_corpus(f"imagefolder:{out}")
    assert back.info.num_rows == cifar.info.num_rows
    got = rows_by_id(back)
    for rid, (label, img) in rows_by_id(cifar).items():
        key = f"{cifar.info.class_names[label]}/{file_name(rid)}"
        assert got[key][0] == label
        np.testing.assert_array_equal(got[key][1], img)
    assert read_manifest(out)["fingerprint"] == cifar.fingerprint()
    with pytest.raises(ArtifactError):
        export_imagefolder(cifar, out)


def test_export_keeps_label_order_for_unsorted_names(tmp_path):
    c = load_corpus("digits", split="test")
    import dataclasses

    names = tuple(f"class{i}" for i in range(10))[::-1]  # sorted order != label order
    c = Corpus(ds=c.ds, info=dataclasses.replace(c.info, class_names=names))
    out = str(tmp_path / "d")
    export_imagefolder(c, out)
    back = load_corpus(f"imagefolder:{out}")
    a = sorted((lbl, img.tobytes()) for lbl, img in rows_by_id(c).values())
    b = sorted((lbl, img.tobytes()) for lbl, img in rows_by_id(back).values())
    assert a == b
