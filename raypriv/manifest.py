"""The artifact contract: the ``manifest.json`` written next to every raypriv output.

A manifest says what produced a directory (method, parameters, seed, the fingerprint of
the input corpus) and what it contains (rows, shapes, files with checksums). The rules every
stage follows, evaluations included:

* **finished?** A directory is finished when its manifest exists (:func:`is_finished`):
  writers put it in place last, atomically, so an interrupted run never looks finished.
* **load check.** A reader names the method it expects (:func:`read_manifest` with
  ``method=``): a directory written by another stage, or by a newer raypriv, is refused with
  one line saying so.
* **where.** Corpora (:func:`raypriv.data.write_corpus`) and manifests are written to a local
  path or a pyarrow filesystem URI; a stage that keeps local state (checkpoints, ledgers,
  teacher weights) refuses a URI with a clear error (:func:`raypriv.files.local_dir`).

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
from raypriv.storage import filesystem, is_uri, read_bytes

__all__ = ["MANIFEST_NAME", "build_manifest", "finish_report", "is_finished", "read_manifest", "to_jsonable",
           "utc_now", "write_manifest"]

MANIFEST_NAME = "manifest.json"
#: An evaluation's results, beside its manifest.
REPORT_NAME = "report.json"


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
    if is_uri(target):
        fs, p, _ = filesystem(target)
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


def is_finished(path: str) -> bool:
    """The one "finished?" rule: ``path`` (a directory or URI prefix) holds its manifest."""
    location = _manifest_location(path)
    if is_uri(location):
        import pyarrow.fs as pafs

        fs, p, _ = filesystem(location)
        return fs.get_file_info(p).type == pafs.FileType.File
    return os.path.isfile(os.path.expanduser(location))


def _version(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in str(text).split(".")[:2])
    except ValueError:
        return (0,)


def check_manifest(manifest: dict, *, path: str, method: str | tuple[str, ...] | None = None,
                   what: str | None = None) -> dict:
    """``manifest`` if it was written by ``method`` (one of several, or any with None) and by a
    raypriv no newer than this one (major.minor); an :class:`ArtifactError` naming ``path`` otherwise."""
    from raypriv import __version__

    methods = (method,) if isinstance(method, str) else method
    if methods is not None and manifest.get("method") not in methods:
        raise ArtifactError(f"{path}: not {what or 'the expected output'} (written by method "
                            f"{manifest.get('method')!r}, expected {' or '.join(map(repr, methods))})")
    written = manifest.get("raypriv_version")
    if written and _version(written) > _version(__version__):
        raise ArtifactError(f"{path}: written by raypriv {written}, newer than this raypriv {__version__}; "
                            "upgrade raypriv to read it")
    return manifest


def finish_report(out_dir: str, report: dict, *, method: str, params: Any = None,
                  input_fingerprint: str | None = None, files: tuple[str, ...] = ()) -> str:
    """Write an evaluation's ``report.json``, then its manifest (last: the report is finished).
    Returns the report's path."""
    from raypriv.files import write_json_atomic

    path = write_json_atomic(os.path.join(out_dir, REPORT_NAME), report)
    write_manifest(out_dir, build_manifest(method=method, params=params, input_fingerprint=input_fingerprint,
                                           extra={"files": [REPORT_NAME, *files]}))
    return path


def read_manifest(path: str, *, method: str | tuple[str, ...] | None = None, what: str | None = None) -> dict:
    """Read the manifest of a raypriv output directory (or the ``manifest.json`` itself).

    Raises :class:`~raypriv.errors.ArtifactError` if it is missing (the output is
    incomplete or not raypriv's), is not a JSON object, or fails :func:`check_manifest`
    (another ``method`` wrote it, described as ``what``; or a newer raypriv).
    """
    location = _manifest_location(path)
    try:
        if is_uri(location):
            text = read_bytes(location).decode("utf-8")
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
    return check_manifest(data, path=str(path), method=method, what=what)
