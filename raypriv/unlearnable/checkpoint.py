"""Per-round checkpoints of noise generation, written so a crash never corrupts the last good one.

Layout of a checkpoint directory (a local path or a pyarrow URI, ``s3://bucket/run.checkpoints``)::

    latest.json                  {"round": r, "dir": "round-000r-…", "config": {...}, "input_fingerprint": ...}
    round-000r-<random>/state.pt surrogate + optimizer state, class noise, history, RNG state
    round-000r-<random>/work/    sample-wise only: Parquet rows {id, label, image, noise}

A round is written under a name of its own, then ``latest.json`` is pointed at it (locally: a
temporary file fsynced and renamed; on an object store: one PUT, which is atomic), then older
rounds are deleted: a crash at any point leaves ``latest.json`` naming a complete round.
Checkpoints hold the surrogate and the noise, never private keys; they contain the private
images (sample-wise mode), so keep them where the input data may live.
"""
from __future__ import annotations

import io
import json
import os
import uuid

from raypriv import storage
from raypriv.errors import ArtifactError

LATEST = "latest.json"


def load_latest(ckpt_dir: str, *, config: dict, input_fingerprint: str) -> dict | None:
    """Return the last complete checkpoint's metadata, or None when there is none.

    Refuses (ArtifactError) a checkpoint made with different settings or input data."""
    path = storage.join(ckpt_dir, LATEST)
    if not storage.exists(path):
        return None
    meta = json.loads(storage.read_bytes(path))
    if meta["input_fingerprint"] != input_fingerprint:
        raise ArtifactError(f"{ckpt_dir}: checkpoint was made from different input data "
                            f"({meta['input_fingerprint'][-12:]} != {input_fingerprint[-12:]}; a fingerprint "
                            "made under another owner key differs too); use another --checkpoint-dir or delete it")
    diff = sorted(k for k in set(config) | set(meta["config"]) if config.get(k) != meta["config"].get(k))
    if diff:
        raise ArtifactError(f"{ckpt_dir}: checkpoint was made with different settings ({', '.join(diff)}); "
                            "use another --checkpoint-dir or delete it")
    return meta


def load_state(ckpt_dir: str, meta: dict) -> dict:
    import torch

    return torch.load(io.BytesIO(storage.read_bytes(storage.join(ckpt_dir, meta["dir"], "state.pt"))),
                      weights_only=False)


def work_path(ckpt_dir: str, meta: dict) -> str:
    return storage.join(ckpt_dir, meta["dir"], "work")


def save_round(ckpt_dir: str, *, round_index: int, state: dict, work_ds, config: dict,
               input_fingerprint: str) -> None:
    """Write round ``round_index``, then point ``latest.json`` at it; delete older rounds."""
    import torch

    fs, root, local = storage.filesystem(ckpt_dir)
    name = f"round-{round_index:04d}-{uuid.uuid4().hex[:8]}"
    fs.create_dir(f"{root}/{name}", recursive=True)
    try:
        buffer = io.BytesIO()
        torch.save(state, buffer)
        with fs.open_output_stream(f"{root}/{name}/state.pt") as f:
            f.write(buffer.getvalue())
        if work_ds is not None:
            work_ds.write_parquet(storage.join(ckpt_dir, name, "work"))
    except BaseException:
        fs.delete_dir(f"{root}/{name}")          # a half-written round (with images) is not left behind
        raise
    meta = json.dumps({"round": round_index, "dir": name, "config": config,
                       "input_fingerprint": input_fingerprint}, indent=1).encode()
    if local:
        tmp = os.path.join(root, f".{LATEST}.tmp")
        with open(tmp, "wb") as f:
            f.write(meta)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, os.path.join(root, LATEST))
    else:
        with fs.open_output_stream(f"{root}/{LATEST}") as f:
            f.write(meta)
    _delete_rounds(fs, root, keep=name)


def _delete_rounds(fs, root: str, *, keep: str | None) -> None:
    import pyarrow.fs as pafs

    for info in fs.get_file_info(pafs.FileSelector(root)):
        if info.type == pafs.FileType.Directory and info.base_name.startswith("round-") and info.base_name != keep:
            fs.delete_dir(info.path)


def remove(ckpt_dir: str) -> None:
    """Delete what a finished run wrote in ``ckpt_dir`` (its rounds and ``latest.json``), then
    the directory if nothing else is in it: other files there are not this run's to delete."""
    import pyarrow.fs as pafs

    if not storage.exists(ckpt_dir):
        return
    fs, root, _ = storage.filesystem(ckpt_dir)
    _delete_rounds(fs, root, keep=None)
    if storage.exists(storage.join(ckpt_dir, LATEST)):
        fs.delete_file(f"{root}/{LATEST}")
    if not fs.get_file_info(pafs.FileSelector(root)):
        fs.delete_dir(root)
