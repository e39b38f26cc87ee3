"""Shared fixtures: one local Ray instance for the whole test session, and a data owner's key
file of the session's own (never the user's ``~/.raypriv/owner.key``)."""
import os

import pytest


@pytest.fixture(scope="session", autouse=True)
def owner_key_file(tmp_path_factory):
    """``RAYPRIV_KEY_FILE`` for the whole session: keyed fingerprints use a fresh test key."""
    path = tmp_path_factory.mktemp("owner") / "owner.key"
    old = os.environ.get("RAYPRIV_KEY_FILE")
    os.environ["RAYPRIV_KEY_FILE"] = str(path)
    yield path
    if old is None:
        os.environ.pop("RAYPRIV_KEY_FILE", None)
    else:
        os.environ["RAYPRIV_KEY_FILE"] = old


def start_session_ray():
    """Start the session's local Ray (4 logical CPUs, no dashboard)."""
    import ray

    ray.init(num_cpus=4, include_dashboard=False)
    ray.data.DataContext.get_current().enable_progress_bars = False


@pytest.fixture(scope="session")
def ray_local():
    """A local Ray instance shared by all tests (``ray.init`` takes ~10 s)."""
    import ray

    started = not ray.is_initialized()
    if started:
        start_session_ray()
    yield ray
    if started:
        ray.shutdown()
