"""raypriv.manifest: JSON-safe conversion, build/write/read."""
import dataclasses
import json
import os

import numpy as np
import pytest

from raypriv.errors import ArtifactError
from raypriv.manifest import MANIFEST_NAME, build_manifest, read_manifest, to_jsonable, write_manifest


@dataclasses.dataclass(frozen=True)
class _Params:
    eps: float
    shape: tuple
    steps: np.int64


def test_to_jsonable():
    out = to_jsonable({"p": _Params(0.5, (3, 32, 32), np.int64(7)), "a": np.arange(3), 1: {2, 1},
                       "nan": float("nan"), "f": np.float32(0.25), "b": np.bool_(True)})
    assert out == {"p": {"eps": 0.5, "shape": [3, 32, 32], "steps": 7}, "a": [0, 1, 2], "1": [1, 2],
                   "nan": None, "f": 0.25, "b": True}
    json.dumps(out, allow_nan=False)


def test_build_write_read(tmp_path):
    m = build_manifest(method="ntga", params=_Params(8 / 255, (1, 2), np.int64(3)), seed=0,
                       input_fingerprint="ab" * 16, extra={"note": ("x",)})
    assert m["method"] == "ntga" and m["params"]["shape"] == [1, 2] and m["note"] == ["x"]
    assert m["raypriv_version"] and m["created_at"].endswith("+00:00")
    path = write_manifest(str(tmp_path), m)
    assert path == os.path.join(str(tmp_path), MANIFEST_NAME)
    assert read_manifest(str(tmp_path)) == m == read_manifest(path)
    assert os.listdir(tmp_path) == [MANIFEST_NAME]


def test_read_missing_or_bad(tmp_path):
    with pytest.raises(ArtifactError, match="incomplete"):
        read_manifest(str(tmp_path))
    (tmp_path / MANIFEST_NAME).write_text("[1, 2]")
    with pytest.raises(ArtifactError, match="JSON object"):
        read_manifest(str(tmp_path))


def test_the_one_finished_rule_and_the_load_checks(tmp_path):
    """A directory is finished when its manifest is in place; a reader names the method it
    expects and refuses another stage's output, or a newer raypriv's, in one line."""
    from raypriv import __version__
    from raypriv.manifest import build_manifest, finish_report, is_finished, read_manifest, write_manifest

    out = tmp_path / "eval"
    out.mkdir()
    (out / "report.json").write_text("{}")                       # a report being rewritten mid-run
    assert not is_finished(str(out)) and not is_finished(str(tmp_path / "missing"))
    finish_report(str(out), {"results": [1]}, method="unlearnable-evaluation", params={"k": (1, 2)})
    assert is_finished(str(out)) and is_finished(f"file://{out}")
    m = read_manifest(str(out), method=("unlearnable-evaluation", "other"))
    assert m["params"] == {"k": [1, 2]} and m["files"] == ["report.json"]
    assert json.loads((out / "report.json").read_text()) == {"results": [1]}
    with pytest.raises(ArtifactError, match="not a teacher .*method 'unlearnable-evaluation', expected 'synth-teacher'"):
        read_manifest(str(out), method="synth-teacher", what="a teacher")
    newer = build_manifest(method="synth-teacher")
    major, minor = (int(x) for x in __version__.split(".")[:2])
    newer["raypriv_version"] = f"{major}.{minor + 1}.0"
    (tmp_path / "t").mkdir()
    write_manifest(str(tmp_path / "t"), newer)
    with pytest.raises(ArtifactError, match="newer than this raypriv"):
        read_manifest(str(tmp_path / "t"), method="synth-teacher")
