"""Source ``imagefolder:PATH``: one sub-folder per class, images inside.

Class folders sorted by name get labels 0..K-1 (hidden folders are ignored); images are
``.png/.jpg/.jpeg/.bmp/.webp`` files (any case) anywhere below a class folder. Split
``train`` reads ``PATH/train`` if it exists, else ``PATH``; ``test`` reads ``PATH/test``.
The driver only lists files; reading and decoding (PIL) happens in Ray tasks. Images are
decoded to grayscale (1 channel) for grayscale PIL modes and RGB (3 channels) otherwise;
alpha is dropped. Ids are file paths relative to ``PATH`` with ``/`` separators, e.g.
``train/cat/0001.png``.
"""
from __future__ import annotations

import os

import numpy as np

from raypriv.data._images import IMAGE_EXTENSIONS, decode_image, stack_images
from raypriv.data.corpus import Corpus, CorpusInfo
from raypriv.errors import DataError

DESCRIPTION = "class-per-folder image tree (imagefolder:PATH), PIL-decoded; train=PATH/train or PATH, test=PATH/test"


def split_root(path: str, split: str) -> tuple[str, str]:
    """``(base, root)``: the absolute ``PATH`` and the folder holding the split's classes."""
    base = os.path.abspath(os.path.expanduser(path))
    if not os.path.isdir(base):
        raise DataError("no such directory", item=path)
    if split == "train":
        train = os.path.join(base, "train")
        return base, (train if os.path.isdir(train) else base)
    test = os.path.join(base, "test")
    if not os.path.isdir(test):
        raise DataError("split='test' needs a 'test' sub-folder", item=path)
    return base, test


def scan(root: str, base: str) -> tuple[tuple[str, ...], list[str]]:
    """Class names and the sorted image files below ``root``'s class folders."""
    classes = tuple(
        sorted(e.name for e in os.scandir(root) if e.is_dir() and not e.name.startswith("."))
    )
    if root == base and os.path.isdir(os.path.join(base, "test")):
        # PATH is itself the train root but also holds test/: that is not a class
        classes = tuple(c for c in classes if c != "test")
    files: list[str] = []
    for cls in classes:
        for dirpath, dirnames, filenames in os.walk(os.path.join(root, cls)):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for fn in sorted(filenames):
                if not fn.startswith(".") and fn.lower().endswith(IMAGE_EXTENSIONS):
                    files.append(os.path.join(dirpath, fn))
    return classes, files


def _decode_batch(batch: dict, *, base: str, root: str, class_index: dict[str, int]) -> dict:
    """map_batches UDF: ``{bytes, path}`` rows to corpus rows (labels from the folder)."""
    ids, labels, images = [], [], []
    for data, path in zip(batch["bytes"], batch["path"]):
        path = str(path)
        if not os.path.isabs(path):
            path = "/" + path  # filesystems may report local paths without the leading slash
        rel_id = os.path.relpath(path, base).replace(os.sep, "/")
        cls = os.path.relpath(path, root).replace(os.sep, "/").split("/", 1)[0]
        if cls not in class_index:
            raise DataError(f"file is not inside a class folder of {root}", item=path)
        images.append(decode_image(bytes(data), name=rel_id))
        ids.append(rel_id)
        labels.append(class_index[cls])
    return {
        "id": np.array(ids, dtype=object),
        "label": np.array(labels, dtype=np.int64),
        "image": stack_images(images),
    }


def load_imagefolder(arg: str | None, *, split: str = "train", download: bool = False) -> Corpus:
    """Source ``imagefolder:PATH`` (see module docstring)."""
    import ray

    base, root = split_root(arg, split)
    classes, files = scan(root, base)
    if not files:
        raise DataError(
            f"corpus is empty: no image files ({', '.join(IMAGE_EXTENSIONS)}) in class sub-folders of {root}",
            item=f"imagefolder:{arg}",
        )
    ds = ray.data.read_binary_files(files, include_paths=True)
    ds = ds.map_batches(
        _decode_batch,
        batch_size=64,
        batch_format="numpy",
        fn_kwargs={"base": base, "root": root, "class_index": {c: i for i, c in enumerate(classes)}},
    )
    info = CorpusInfo(
        classes_declared=True,
        source=f"imagefolder:{arg}",
        split=split,
        num_classes=len(classes),
        image_shape=(0, 0, 0),
        class_names=classes,
        num_rows=len(files),
    )
    return Corpus(ds=ds, info=info)
