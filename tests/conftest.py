"""Shared fixtures: one local Ray instance for the whole test session, an S3-compatible object
store (moto's server on 127.0.0.1) that it and every test reach through ``AWS_ENDPOINT_URL``,
and a data owner's key file of the session's own (never the user's ``~/.raypriv/owner.key``)."""
import os
import secrets

import pytest

#: The object store's bucket; tests write under a prefix of their own (:func:`s3_prefix`).
BUCKET = "raypriv-test"
_STORE = {}


@pytest.fixture(scope="session", autouse=True)
def object_store():
    """The S3-compatible server, started before anything can start a Ray instance (raypriv's
    commands start an embedded one): every Ray worker of the session sees ``AWS_ENDPOINT_URL``."""
    return start_object_store()


#: Ray Train's controller polls its workers every 2 s by default, so each run's end (and each
#: report) waits up to that long; the suite launches about a hundred small runs. Set for the
#: session before any Ray starts (every Ray process inherits it); a user's own value is kept.
TRAIN_POLL_S = "0.2"


@pytest.fixture(scope="session", autouse=True)
def fast_train_polls():
    given = os.environ.get("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S")
    os.environ["RAY_TRAIN_HEALTH_CHECK_INTERVAL_S"] = given or TRAIN_POLL_S
    yield
    if given is None:
        os.environ.pop("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", None)


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


def start_object_store() -> str:
    """Start moto's S3 server on 127.0.0.1 (once) and point this process's environment at it,
    before Ray starts, so that every Ray worker inherits it; return its endpoint URL."""
    if "endpoint" not in _STORE:
        import logging

        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.ERROR)        # no line per request
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        host, port = server.get_host_and_port()
        _STORE.update(server=server, endpoint=f"http://{host}:{port}")
        os.environ.update(AWS_ENDPOINT_URL=_STORE["endpoint"], AWS_ACCESS_KEY_ID="testing",
                          AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1",
                          AWS_EC2_METADATA_DISABLED="true")
        import pyarrow.fs as pafs

        pafs.S3FileSystem(endpoint_override=_STORE["endpoint"], allow_bucket_creation=True).create_dir(BUCKET)
    return _STORE["endpoint"]


def s3_prefix(name: str) -> str:
    """A fresh ``s3://`` prefix in the session's object store."""
    start_object_store()
    return f"s3://{BUCKET}/{name}-{secrets.token_hex(4)}"


def start_session_ray():
    """Start the session's local Ray (4 logical CPUs, no dashboard), after the object store."""
    import ray

    from raypriv.runtime import init_ray

    start_object_store()
    init_ray(num_cpus=4, quiet=False)       # the embedded Ray users get (its system config), logs kept
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
