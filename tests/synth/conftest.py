import pytest

from tests.synth.synth_helpers import quick_teacher, small_corpus


@pytest.fixture(scope="session")
def digits300(ray_local):
    return small_corpus("digits", 300)


@pytest.fixture(scope="session")
def digits_teacher(digits300):
    return quick_teacher(digits300, epochs=5)


@pytest.fixture(scope="session")
def digits_stats(digits300, digits_teacher):
    from raypriv.runtime import ResourceSpec
    from raypriv.synth import compute_class_stats

    return compute_class_stats(digits300, digits_teacher, resources=ResourceSpec(workers=2), progress=lambda m: None)
