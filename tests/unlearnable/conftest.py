import pytest

from tests.unlearnable.ue_helpers import small_corpus


@pytest.fixture(scope="module")
def digits200(ray_local):
    return small_corpus("digits", 200)
