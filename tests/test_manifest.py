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
