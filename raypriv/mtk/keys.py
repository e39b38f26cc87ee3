"""Trigger-keys: one secret pattern per secured task, added to the input to unlock that task.

A key is an integer pattern of the image's shape with entries in ``[-amplitude, amplitude]``
(8-bit levels), drawn from the operating system's CSPRNG (:func:`secrets.token_bytes`).
Applying keys adds their patterns to uint8 images in integer arithmetic and clips to
``[0, 255]``, so a keyed image is itself a valid uint8 image (quantized by construction) that
can be stored, sent and decoded without losing the key. Keys combine: applying the keys of
tasks i and j adds both patterns and unlocks both tasks.

Two forms (:class:`KeySpec`):

* ``full`` (the default): every pixel carries ``±amplitude``, a random sign per pixel and
  channel: ``H·W·C`` secret bits (784 on MNIST), imperceptible at small amplitudes, not removed
  by cropping a corner, and keys of different tasks overlap everywhere, so no region of the
  image tells which key was applied;
* ``patch``: the random signs fill a ``patch_size`` square only, a different square per
  secured task (tiled row by row from the top left, public like the form itself): the
  paper's picture of small symbols stamped on the image, ``patch_size²·C`` bits per key.

A key must hold at least :data:`MIN_KEY_BITS` secret bits (an 8×8 patch on one channel):
with fewer, an attacker could try every pattern, and the salted digest a model records would
let them check each guess offline.

The key file holds the patterns and stays with the key distributor: written with mode 0600,
and refused on reading when anyone but its owner may read it. Nothing else holds a key:
a model artifact records a salted hash of each key (:func:`key_digests`), so a key file
meant for another model is refused with a clear error, and :class:`KeySet`'s ``repr`` shows
tasks and form, never a pattern.

>>> import numpy as np
>>> ks = KeySet.generate(("digit",), image_shape=(8, 8, 1), spec=KeySpec(amplitude=8))
>>> ks
KeySet(tasks=('digit',), form='full', amplitude=8, image_shape=(8, 8, 1))
>>> keyed = ks.apply(np.full((2, 8, 8, 1), 100, np.uint8), ("digit",))
>>> keyed.dtype, sorted(np.unique(keyed).tolist())
(dtype('uint8'), [92, 108])
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import stat
from typing import Mapping

import numpy as np

from raypriv.errors import ConfigError, RayprivError
from raypriv.mtk.config import KEY_FORMS, KeySpec

__all__ = ["KEY_FORMS", "KeyFileError", "KeySet", "KeySpec", "apply_patterns", "check_digests", "key_digests",
           "new_salt"]

FORMAT = "raypriv-mtk-keys-v1"
#: The fewest secret bits (random signs) a generated key may hold.
MIN_KEY_BITS = 64


class KeyFileError(RayprivError):
    """A key file is missing, unsafe, malformed or belongs to another model."""


def apply_patterns(images: np.ndarray, patterns) -> np.ndarray:
    """uint8 ``(B, H, W, C)`` images with the integer ``patterns`` (each ``H x W x C``) added and
    clipped to ``[0, 255]``; a uint8 result (no pattern: the images unchanged)."""
    images = np.asarray(images)
    if images.dtype != np.uint8:
        raise ConfigError("images", f"keys apply to uint8 images, got {images.dtype}")
    patterns = list(patterns)
    if not patterns:
        return images
    total = np.sum([np.asarray(p, dtype=np.int16) for p in patterns], axis=0)
    return np.clip(images.astype(np.int16) + total, 0, 255).astype(np.uint8)


class KeySet:
    """The secret trigger-keys of one model: ``{task: pattern}`` and their :class:`KeySpec`.

    Build with :meth:`generate`; save with :meth:`save` (mode 0600) and load with :meth:`load`
    (refuses files others can read, and, given a model's key digests, keys of another model).
    """

    def __init__(self, patterns: Mapping[str, np.ndarray], *, spec: KeySpec, image_shape: tuple[int, int, int]):
        self._patterns = {t: np.asarray(p, dtype=np.int16) for t, p in patterns.items()}
        self.spec = spec
        self.image_shape = tuple(int(v) for v in image_shape)
        for t, p in self._patterns.items():
            if p.shape != self.image_shape:
                raise KeyFileError(f"key of task {t!r} has shape {p.shape}, the images {self.image_shape}")
            if int(np.abs(p).max(initial=0)) > spec.amplitude:
                raise KeyFileError(f"key of task {t!r} exceeds the amplitude {spec.amplitude}")

    @classmethod
    def generate(cls, tasks, *, image_shape, spec: KeySpec | None = None) -> "KeySet":
        """Fresh keys for the secured ``tasks`` (in order: the i-th takes patch i)."""
        spec = spec or KeySpec()
        tasks = tuple(tasks)
        if not tasks:
            raise ConfigError("secured tasks", "at least one task must be secured to need a key")
        if len(set(tasks)) != len(tasks):
            raise ConfigError("secured tasks", f"each task once, got {tasks}")
        shape = tuple(int(v) for v in image_shape)
        for i in range(len(tasks)):
            bits = int(spec.support(i, shape).sum())
            if bits < MIN_KEY_BITS:
                raise ConfigError("key patch_size", f"a {spec.form} key on {shape} images holds {bits} secret bits, "
                                                    f"fewer than {MIN_KEY_BITS}: an attacker could try every "
                                                    "pattern; use a larger patch_size or form='full'")
        return cls({t: spec.random_pattern(i, shape) for i, t in enumerate(tasks)}, spec=spec, image_shape=shape)

    @property
    def tasks(self) -> tuple[str, ...]:
        return tuple(self._patterns)

    def pattern(self, task: str) -> np.ndarray:
        if task not in self._patterns:
            raise KeyFileError(f"no key for task {task!r}; this key set holds {list(self.tasks)}")
        return self._patterns[task]

    def patterns(self) -> list[np.ndarray]:
        """The patterns in task order (what training workers receive through the object store)."""
        return [self._patterns[t] for t in self.tasks]

    def apply(self, images: np.ndarray, tasks=None) -> np.ndarray:
        """``images`` with the keys of ``tasks`` (default: all) added (:func:`apply_patterns`)."""
        tasks = self.tasks if tasks is None else tuple(tasks)
        return apply_patterns(images, [self.pattern(t) for t in tasks])

    def __repr__(self) -> str:
        return (f"KeySet(tasks={self.tasks!r}, form={self.spec.form!r}, amplitude={self.spec.amplitude}, "
                f"image_shape={self.image_shape!r})")

    __str__ = __repr__

    # ------------------------------------------------------------------ file
    def save(self, path: str, *, overwrite: bool = False) -> str:
        """Write the key file (mode 0600, atomically; an existing file only with ``overwrite``)."""
        from raypriv.files import write_new

        path = os.path.abspath(os.path.expanduser(path))
        body = {"format": FORMAT, "spec": self.spec.to_dict(), "image_shape": list(self.image_shape),
                "keys": {t: base64.b64encode(p.astype(np.int8).tobytes()).decode("ascii")
                         for t, p in self._patterns.items()}}
        data = json.dumps(body, indent=1).encode()
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        if os.path.lexists(path):
            if not overwrite:
                raise KeyFileError(f"{path}: a key file exists; pass overwrite=True (--overwrite) to replace it, "
                                   "which makes models trained with the old keys unusable with this file")
            os.remove(path)
        if not write_new(path, data, mode=0o600):
            raise KeyFileError(f"{path}: another process wrote a key file here at the same time")
        os.chmod(path, 0o600)
        return path

    @classmethod
    def load(cls, path: str, *, digests: Mapping[str, str] | None = None, salt: str | None = None) -> "KeySet":
        """Read a key file; with a model's ``digests`` and ``salt`` (:func:`key_digests`), check
        that the keys are that model's."""
        path = os.path.abspath(os.path.expanduser(path))
        try:
            f = open(path, "rb")
        except FileNotFoundError:
            raise KeyFileError(f"{path}: no such key file") from None
        except OSError as e:
            raise KeyFileError(f"{path}: cannot open the key file ({e.strerror})") from None
        with f:
            # the mode of the file actually opened (a stat before the open could see another file)
            st = os.fstat(f.fileno())
            if os.name == "posix" and st.st_mode & 0o077:
                raise KeyFileError(f"{path}: the key file may be read by others (mode {stat.filemode(st.st_mode)}); "
                                   f"keys are secrets: chmod 600 {path}")
            data = f.read()
        try:
            body = json.loads(data)
            if body.get("format") != FORMAT:
                raise ValueError(f"format {body.get('format')!r}, expected {FORMAT!r}")
            spec = KeySpec(**body["spec"])
            shape = tuple(int(v) for v in body["image_shape"])
            patterns = {t: np.frombuffer(base64.b64decode(v), dtype=np.int8).astype(np.int16).reshape(shape)
                        for t, v in body["keys"].items()}
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise KeyFileError(f"{path}: not a raypriv key file ({e})") from None
        keys = cls(patterns, spec=spec, image_shape=shape)
        if digests is not None:
            check_digests(keys, digests=digests, salt=salt, path=path)
        return keys


def new_salt() -> str:
    """A fresh public salt for a model's key digests (16 random bytes, hex)."""
    return secrets.token_hex(16)


def key_digests(keys: KeySet, *, salt: str) -> dict[str, str]:
    """``{task: HMAC-SHA256(salt, task ‖ pattern)}``: what a model artifact records of its keys.
    The patterns have at least ``patch_size²·C`` random bits, so the digest reveals nothing usable
    about them; it only lets a key file be matched with its model."""
    out = {}
    for t in keys.tasks:
        msg = t.encode() + b"\0" + keys.pattern(t).astype(np.int8).tobytes()
        out[t] = hmac.new(bytes.fromhex(salt), msg, hashlib.sha256).hexdigest()
    return out


def check_digests(keys: KeySet, *, digests: Mapping[str, str], salt: str | None, path: str = "key file") -> None:
    """Raise :class:`KeyFileError` unless ``keys`` are exactly the keys ``digests`` describe."""
    if salt is None:
        raise KeyFileError("the model records key digests without their salt")
    if set(keys.tasks) != set(digests):
        raise KeyFileError(f"{path}: holds keys for {sorted(keys.tasks)}, the model's secured tasks are "
                           f"{sorted(digests)}")
    mine = key_digests(keys, salt=salt)
    wrong = sorted(t for t in digests if not hmac.compare_digest(mine[t], str(digests[t])))
    if wrong:
        raise KeyFileError(f"{path}: the key(s) of {', '.join(wrong)} are not this model's (a key file of "
                           "another model, or keys re-generated after training)")
