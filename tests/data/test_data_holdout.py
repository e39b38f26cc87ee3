"""The validation split cut from training data: disjoint, complete, stable under row order."""
import numpy as np
import pytest

from raypriv.data import load_corpus
from raypriv.data.holdout import holdout
from raypriv.errors import ConfigError

pytestmark = pytest.mark.usefixtures("ray_local")


def _ids(corpus):
    return sorted(np.asarray(corpus.ds.to_pandas()["id"]).astype(str))


def test_holdout_is_a_stable_disjoint_cover_with_the_right_share():
    full = load_corpus("digits", split="train")
    rest, val = holdout(full, fraction=0.25)
    a, b = _ids(rest), _ids(val)
    assert not set(a) & set(b) and sorted(a + b) == _ids(full)
    assert (rest.info.split, val.info.split) == ("train", "validation")
    assert rest.info.num_rows == len(a) and val.info.num_rows == len(b)
    assert abs(len(b) / full.info.num_rows - 0.25) < 0.05
    # every class is in the validation split, near its share
    labels = np.asarray(val.ds.to_pandas()["label"])
    assert set(labels.tolist()) == set(range(full.info.num_classes))
    # the same cut whatever the row order; another seed cuts differently
    shuffled = type(full)(ds=full.ds.random_shuffle(seed=3).repartition(7).materialize(), info=full.info)
    assert _ids(holdout(shuffled, fraction=0.25)[1]) == b
    assert _ids(holdout(full, fraction=0.25, seed=1)[1]) != b


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1])
def test_a_holdout_fraction_outside_zero_one_is_refused(fraction):
    with pytest.raises(ConfigError, match="holdout fraction"):
        holdout(load_corpus("digits", split="train"), fraction=fraction)


def test_a_spec_with_a_validation_suffix_serves_both_parts_and_the_source_test_split():
    """What a sweep's trials read: ``train`` without the held-out rows, ``validation`` the held-out
    rows, ``test`` the source's own test split untouched."""
    full = load_corpus("digits", split="train")
    train = load_corpus("digits#validation=0.2", split="train")
    val = load_corpus("digits#validation=0.2", split="validation")
    assert not set(_ids(train)) & set(_ids(val)) and sorted(_ids(train) + _ids(val)) == _ids(full)
    assert _ids(val) == _ids(holdout(full, fraction=0.2)[1])
    assert train.info.source == val.info.source == "digits#validation=0.2" and val.info.split == "validation"
    assert _ids(load_corpus("digits#validation=0.2", split="test")) == _ids(load_corpus("digits", split="test"))
    with pytest.raises(ConfigError, match="validation fraction"):
        load_corpus("digits#validation=1.5")
    with pytest.raises(ConfigError, match="offers splits"):
        load_corpus("digits", split="validation")
