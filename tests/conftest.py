"""Shared fixtures: one local Ray instance for the whole test session."""
import pytest


@pytest.fixture(scope="session")
def ray_local():
    """A local Ray instance shared by all tests (``ray.init`` takes ~10 s)."""
    import ray

    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=4, include_dashboard=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    yield ray
    if started:
        ray.shutdown()
