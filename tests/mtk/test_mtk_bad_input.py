"""Bad input to the MTK jobs: one clear error, and nothing written (no key file, no model, no
report). The cases of the issue: a key file with the wrong permissions, a key file of another
model, a task name that does not exist, a secured task with one class, labels out of range; and
a held-out corpus or images that do not fit the model."""
import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from raypriv.data.writer import encode_png
from raypriv.errors import ConfigError, DataError
from raypriv.mtk.keys import KeyFileError, KeySet


def user_corpus(root, *, smiling, classes: int = 2, size: int = 8) -> str:
    """A user's Parquet corpus of ``size``² grey images with the main label and a declared label
    column ``smiling`` (``classes`` classes) holding ``smiling``."""
    from raypriv.manifest import write_manifest

    n = len(smiling)
    rng = np.random.default_rng(0)
    os.makedirs(root, exist_ok=True)
    pq.write_table(pa.table({"id": [f"img{k}" for k in range(n)], "label": [k % 2 for k in range(n)],
                             "image": [encode_png(rng.integers(0, 256, (size, size, 1), dtype=np.uint8))
                                       for _ in range(n)], "smiling": smiling}),
                   os.path.join(root, "part-0.parquet"))
    write_manifest(str(root), {"num_classes": 2, "label_columns": [{"name": "smiling", "num_classes": classes}]})
    return f"parquet:{root}"


def test_labels_out_of_range_are_named_and_no_key_file_is_written(ray_local, tmp_path):
    from raypriv.mtk.job import MtkKeysJob, MtkPipelineJob

    source = user_corpus(tmp_path / "bad", smiling=[0, 1, 2, 0, 1, 0])
    for job in (MtkKeysJob(source=source, output=str(tmp_path / "k.keys")),
                MtkPipelineJob(source=source, keys=str(tmp_path / "k.keys"), output=str(tmp_path / "run"))):
        with pytest.raises(DataError, match=r"img2.*'smiling': value 2 out of range \[0, 2\)"):
            job.run()
        assert not os.path.exists(tmp_path / "k.keys") and not os.path.exists(tmp_path / "run")


def test_a_secured_task_left_out_of_training_fails_before_the_key_file(ray_local, tmp_path):
    from raypriv.mtk.job import MtkPipelineJob

    job = MtkPipelineJob.from_dict({"source": user_corpus(tmp_path / "ok", smiling=[0, 1, 1, 0, 1, 0]),
                                    "keys": str(tmp_path / "k.keys"), "output": str(tmp_path / "run"),
                                    "secured": ["smiling"], "mtk": {"tasks": ["label"]}})
    with pytest.raises(ConfigError, match=r"invalid secured: unknown task\(s\) \['smiling'\]"):
        job.run()
    assert not os.path.exists(tmp_path / "k.keys") and not os.path.exists(tmp_path / "run")


def test_unknown_and_one_class_secured_tasks_write_no_key_file(ray_local, tmp_path):
    from raypriv.mtk.job import MtkKeysJob

    source = user_corpus(tmp_path / "ok", smiling=[0, 1, 1, 0, 1, 0])
    with pytest.raises(ConfigError, match=r"unknown task\(s\) \['colour'\]"):
        MtkKeysJob(source=source, output=str(tmp_path / "k.keys"), secured=("colour",)).run()
    one = user_corpus(tmp_path / "one", smiling=[0] * 6, classes=1)
    with pytest.raises(ConfigError, match="have one class"):
        MtkKeysJob(source=one, output=str(tmp_path / "k.keys"), secured=("smiling",)).run()
    assert not os.path.exists(tmp_path / "k.keys")


def test_a_key_file_with_open_permissions_is_refused_before_training(ray_local, tmp_path):
    from raypriv.mtk.job import MtkTrainJob

    path = KeySet.generate(("label",), image_shape=(8, 8, 1)).save(str(tmp_path / "k.keys"))
    os.chmod(path, 0o640)
    job = MtkTrainJob(source=user_corpus(tmp_path / "ok", smiling=[0, 1, 1, 0, 1, 0]), keys=path,
                      output=str(tmp_path / "model"))
    with pytest.raises(KeyFileError, match="may be read by others"):
        job.run()
    assert not os.path.exists(tmp_path / "model") and not os.path.exists(tmp_path / "model.checkpoints")
