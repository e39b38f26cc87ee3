"""Provenance records: the ``manifest.json`` written next to every raypriv output.

A manifest says what produced a directory (method, parameters, seed, the fingerprint of
the input corpus) and what it contains (rows, shapes, files with checksums). Its
presence marks an output as complete: writers put it in place last.

>>> from raypriv.manifest import build_manifest, to_jsonable
>>> m = build_manifest(method="noise", params={"eps": 8 / 255, "shape": (3, 32, 32)}, seed=0)
>>> m["method"], m["params"]["shape"], m["seed"]
('noise', [3, 32, 32], 0)
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import secrets
from typing import Any

from raypriv.errors import ArtifactError
from raypriv.files import to_jsonable

__all__ = ["MANIFEST_NAME", "build_manifest", "read_manifest", "to_jsonable", "utc_now", "write_manifest"]

MANIFEST_NAME = "manifest.json"


def utc_now() -> str:
    """The current time as an ISO-8601 UTC string with second precision."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def build_manifest(
    *,
    method: str,
    params: Any = None,
    seed: int | None = None,
    input_fingerprint: str | None = None,
    extra: dict | None = None,
) -> dict:
    """The provenance part of a manifest: what method with which settings produced an output.

    ``params`` may be a dataclass or dict; ``extra`` keys are merged in last. Writers
    (:func:`raypriv.data.write_corpus`) add what they know about the content.
    """
    from raypriv import __version__

    m: dict[str, Any] = {
        "method": method,
        "params": to_jsonable(params if params is not None else {}),
        "seed": to_jsonable(seed),
        "input_fingerprint": input_fingerprint,
        "raypriv_version": __version__,
        "created_at": utc_now(),
    }
    if extra:
        m.update(to_jsonable(extra))
    return m


def _is_uri(path: str) -> bool:
    return "://" in str(path)


def _manifest_location(path: str) -> str:
    path = str(path)
    if path.rstrip("/").endswith(MANIFEST_NAME):
        return path
    return path.rstrip("/") + "/" + MANIFEST_NAME


def write_manifest(path: str, manifest: dict) -> str:
    """Write ``manifest`` as ``path/manifest.json`` (``path`` is a directory or URI prefix).

    Local files are written to a temporary name and renamed into place, so a reader
    never sees a half-written manifest. Returns the manifest's path.
    """
    text = json.dumps(to_jsonable(manifest), indent=2, sort_keys=True, allow_nan=False) + "\n"
    target = _manifest_location(path)
    if _is_uri(target):
        import pyarrow.fs as pafs

        fs, p = pafs.FileSystem.from_uri(target)
        with fs.open_output_stream(p) as f:
            f.write(text.encode())
        return target
    target = os.path.abspath(os.path.expanduser(target))
    tmp = f"{target}.tmp-{secrets.token_hex(4)}"
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return target


def read_manifest(path: str) -> dict:
    """Read the manifest of a raypriv output directory (or the ``manifest.json`` itself).

    Raises :class:`~raypriv.errors.ArtifactError` if it is missing (the output is
    incomplete or not raypriv's) or is not a JSON object.
    """
    location = _manifest_location(path)
    try:
        if _is_uri(location):
            import pyarrow.fs as pafs

            fs, p = pafs.FileSystem.from_uri(location)
            with fs.open_input_stream(p) as f:
                text = f.read().decode("utf-8")
        else:
            with open(os.path.expanduser(location), encoding="utf-8") as f:
                text = f.read()
    except (FileNotFoundError, OSError) as e:
        raise ArtifactError(
            f"{path}: no readable {MANIFEST_NAME} ({e.__class__.__name__}); "
            "the output is incomplete or was not written by raypriv"
        ) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ArtifactError(f"{location}: not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise ArtifactError(f"{location}: expected a JSON object, got {type(data).__name__}")
    return data
