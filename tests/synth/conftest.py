import pytest

from synth_helpers import quick_teacher, small_corpus


@pytest.fixture(scope="module")
def digits300(ray_local):
    return small_corpus("digits", 300)


@pytest.fixture(scope="module")
def digits_teacher(digits300):
    return quick_teacher(digits300, epochs=5)
