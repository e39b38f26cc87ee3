"""Image helpers used inside Ray tasks: decode, encode to PNG, resize, batch stacking."""
from __future__ import annotations

import io
import re

import numpy as np

from raypriv.errors import DataError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
# PIL modes decoded as 1-channel grayscale; everything else becomes 3-channel RGB.
_GRAY_MODES = {"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "I;16N", "F", "La"}


def decode_image(data: bytes, *, name: str) -> np.ndarray:
    """Decode image bytes to uint8 HxWxC (C=1 for grayscale modes, 3 otherwise; alpha is
    dropped). Raises DataError naming ``name`` if the bytes are not a complete image."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as im:
            im.verify()  # chunk structure and checksums: catches truncation load() tolerates
        with Image.open(io.BytesIO(data)) as im:
            im.load()
            mode = "L" if im.mode in _GRAY_MODES else "RGB"
            arr = np.asarray(im if im.mode == mode else im.convert(mode), dtype=np.uint8)
    except Exception as e:  # noqa: BLE001 - PIL raises many types for bad files
        raise DataError(f"cannot decode image ({type(e).__name__}: {e})", item=name) from None
    if arr.ndim == 2:
        arr = arr[:, :, None]
    return np.ascontiguousarray(arr)


def encode_png(img: np.ndarray) -> bytes:
    """Lossless PNG bytes of a uint8 HxWxC image (C in 1, 2, 3, 4)."""
    from PIL import Image

    c = img.shape[2]
    if c == 1:
        pil = Image.fromarray(np.ascontiguousarray(img[:, :, 0]), mode="L")
    else:
        pil = Image.fromarray(np.ascontiguousarray(img), mode={2: "LA", 3: "RGB", 4: "RGBA"}[c])
    buf = io.BytesIO()
    pil.save(buf, format="PNG", compress_level=6)
    return buf.getvalue()


def resize_image(img: np.ndarray, size: int) -> np.ndarray:
    """Resize a uint8 HxWxC image to size x size with PIL bilinear interpolation."""
    from PIL import Image

    if img.shape[0] == size and img.shape[1] == size:
        return img
    chans = [
        np.asarray(Image.fromarray(np.ascontiguousarray(img[:, :, c])).resize((size, size), Image.BILINEAR))
        for c in range(img.shape[2])
    ]
    return np.stack(chans, axis=-1).astype(np.uint8, copy=False)


def stack_images(images: list[np.ndarray]):
    """One (N, H, W, C) array if all shapes agree, else a 1-D object array of images
    (Ray stores that as a variable-shaped tensor column)."""
    if images and all(im.shape == images[0].shape for im in images):
        return np.stack(images)
    out = np.empty(len(images), dtype=object)
    for i, im in enumerate(images):
        out[i] = im
    return out


def iter_images(column) -> list[np.ndarray]:
    """The rows of an image column from a numpy batch (a 4-D array or object array)."""
    if isinstance(column, np.ndarray) and column.dtype != object:
        return list(column)
    return [np.asarray(x) for x in column]


def sanitize_name(text: str) -> str:
    """A file-name-safe version of an id or class name."""
    s = re.sub(r"[^A-Za-z0-9._-]+", "_", str(text)).strip("._") or "_"
    return s
