"""Report pictures (:mod:`raypriv.figures`): a few images of every class, drawn per class."""
import numpy as np
import pytest
from PIL import Image

from raypriv.errors import DataError
from raypriv.figures import first_per_class, montage, save_class_grid


def _corpus(ray, *, classes=3, per_class=5, value=lambda c, i: 40 * c + i):
    """Class-sorted rows whose image ``i`` of class ``c`` is a constant ``value(c, i)``."""
    from raypriv.data import Corpus, CorpusInfo

    rows = [{"id": f"c{c}/{i}", "label": c, "image": np.full((6, 6, 1), value(c, i), np.uint8)}
            for c in range(classes) for i in range(per_class)]
    info = CorpusInfo(source="test", split="train", num_classes=classes, image_shape=(6, 6, 1),
                      class_names=tuple(f"k{c}" for c in range(classes)), num_rows=len(rows))
    return Corpus(ds=ray.data.from_items(rows).materialize(), info=info)


def test_first_per_class_keeps_k_images_of_every_class(ray_local):
    """k of each class, each really of that class (which k depends on the order blocks arrive in)."""
    found = first_per_class(_corpus(ray_local), 2, batch_size=4)
    assert sorted(found) == [0, 1, 2]
    for c, imgs in found.items():
        values = [int(img[0, 0, 0]) for img in imgs]
        assert len(values) == 2 == len(set(values)) and all(40 * c <= v < 40 * c + 5 for v in values), (c, values)


def test_montage_places_images_row_by_row():
    tiles = [np.full((2, 2, 1), v, np.uint8) for v in (10, 20, 30)]
    out = montage(tiles, columns=2, pad=1, fill=255)
    assert out[0, 0, 0] == 10 and out[0, 3, 0] == 20 and out[3, 0, 0] == 30 and out[3, 3, 0] == 255
    assert out[2, 0, 0] == 255                      # the padding row


def test_class_grid_draws_each_panel_per_class(ray_local, tmp_path):
    samples, real = _corpus(ray_local), _corpus(ray_local, value=lambda c, i: 250 - 40 * c)
    path = save_class_grid([("samples", samples), ("real", real)], str(tmp_path / "g.png"), per_class=4,
                           class_names=samples.info.class_names)
    img = np.asarray(Image.open(path).convert("L"))
    assert img.shape[0] > 100 and img.shape[1] > 200
    # the darkest pixels are class 0's first sample (value 0); the drawing is not blank
    assert img.min() < 30 and len(np.unique(img)) > 10


def test_a_grid_needs_images(ray_local, tmp_path):
    from raypriv.data import Corpus

    empty = _corpus(ray_local)
    empty = Corpus(ds=empty.ds.filter(lambda r: False), info=empty.info)
    with pytest.raises(DataError, match="test: no images to draw"):
        save_class_grid([("none", empty)], str(tmp_path / "g.png"))
