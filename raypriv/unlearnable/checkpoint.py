"""Per-round checkpoints of noise generation, written so a crash never corrupts the last good one.

Layout of a checkpoint directory::

    latest.json            {"round": r, "dir": "round-000r", "config": {...}, "input_fingerprint": ...}
    round-000r/state.pt    surrogate + optimizer state, class noise, history, RNG state
    round-000r/work/       sample-wise only: Parquet rows {id, label, image, noise}

``latest.json`` is replaced atomically only after the round directory is complete.
Checkpoints hold the surrogate and the noise, never private keys; they contain the
private images (sample-wise mode), so keep them where the input data may live.
"""
from __future__ import annotations

import json
import os
import shutil
import uuid

from raypriv.errors import ArtifactError

LATEST = "latest.json"


def load_latest(ckpt_dir: str, *, config: dict, input_fingerprint: str) -> dict | None:
    """Return the last complete checkpoint's metadata, or None when there is none.

    Refuses (ArtifactError) a checkpoint made with different settings or input data."""
    path = os.path.join(ckpt_dir, LATEST)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        meta = json.load(f)
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

    return torch.load(os.path.join(ckpt_dir, meta["dir"], "state.pt"), weights_only=False)


def work_path(ckpt_dir: str, meta: dict) -> str:
    return os.path.join(ckpt_dir, meta["dir"], "work")


def save_round(ckpt_dir: str, *, round_index: int, state: dict, work_ds, config: dict,
               input_fingerprint: str) -> None:
    """Write round ``round_index`` and then point ``latest.json`` at it; prune older rounds."""
    import torch

    os.makedirs(ckpt_dir, exist_ok=True)
    name = f"round-{round_index:04d}"
    tmp = os.path.join(ckpt_dir, f".{name}.tmp-{uuid.uuid4().hex[:8]}")
    os.makedirs(tmp)
    try:
        torch.save(state, os.path.join(tmp, "state.pt"))
        if work_ds is not None:
            work_ds.write_parquet(os.path.join(tmp, "work"))
        final = os.path.join(ckpt_dir, name)
        if os.path.exists(final):
            shutil.rmtree(final)
        os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    meta = {"round": round_index, "dir": name, "config": config, "input_fingerprint": input_fingerprint}
    tmp_meta = os.path.join(ckpt_dir, f".{LATEST}.tmp")
    with open(tmp_meta, "w") as f:
        json.dump(meta, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp_meta, os.path.join(ckpt_dir, LATEST))
    for entry in os.listdir(ckpt_dir):
        if entry.startswith("round-") and entry != name:
            shutil.rmtree(os.path.join(ckpt_dir, entry), ignore_errors=True)
