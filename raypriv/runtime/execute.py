"""Running Ray work so that a raypriv error raised in a worker reaches the caller as itself,
not wrapped in ``RayTaskError``/``UserCodeException``/``TrainingFailedError`` tracebacks.

>>> from raypriv.errors import DataError
>>> find_raypriv_error(RuntimeError("wrapped")) is None
True
>>> err = RuntimeError("task failed")
>>> err.__cause__ = DataError("mixed image sizes", item="train/b/big.png")
>>> print(find_raypriv_error(err))
train/b/big.png: mixed image sizes

When Ray flattened the error into text, the class is rebuilt from the trace line:

>>> found = find_raypriv_error(RuntimeError("Traceback ... raypriv.errors.ArtifactError: out.checkpoints holds a run"))
>>> type(found).__name__, str(found)
('ArtifactError', 'out.checkpoints holds a run')
>>> found = find_raypriv_error(RuntimeError("raypriv.errors.ConfigError: invalid lr: must be > 0, got 0"))
>>> type(found).__name__, found.field
('ConfigError', 'lr')
"""
from __future__ import annotations

import contextlib
import re
from typing import Any, Callable

from raypriv import errors
from raypriv.errors import DataError, RayprivError

# The last "raypriv.errors.<Name>: <message>" line of a traceback Ray flattened into text.
_TRACE_LINE = re.compile(r"raypriv\.errors\.(\w+): (.*)")
_CONFIG_MESSAGE = re.compile(r"invalid (.+?): (.*)", re.S)
# Ray Data appends "\nFailed to apply UDF transform after 1/1 attempts ..." to messages.
_RETRY_SUFFIX = re.compile(r"\nFailed to .*? after \d+/\d+ attempts.*", re.S)


def _is_ray_wrapper(exc: BaseException) -> bool:
    try:
        from ray.exceptions import RayTaskError
    except ImportError:  # pragma: no cover
        return False
    return isinstance(exc, RayTaskError)


def _clean(err: RayprivError) -> RayprivError:
    """``err`` with Ray's retry annotation removed from its message (a fresh DataError keeps its item)."""
    if not isinstance(err, DataError):
        return err
    msg = _RETRY_SUFFIX.sub("", str(err.args[0]) if err.args else str(err))
    item = getattr(err, "item", None)
    if item and msg.startswith(f"{item}: "):
        msg = msg[len(item) + 2:]
    return type(err)(msg, item=item) if type(err) is DataError else DataError(msg, item=item)


def _from_text(text: str) -> RayprivError | None:
    """The raypriv error named on the last matching line of a flattened traceback, if any."""
    found = None
    for line in _RETRY_SUFFIX.sub("", text).splitlines():
        m = _TRACE_LINE.search(line)
        if m:
            found = m
    if found is None:
        return None
    cls = getattr(errors, found.group(1), None)
    msg = found.group(2).strip()
    if not (isinstance(cls, type) and issubclass(cls, RayprivError)):
        return RayprivError(msg)
    if issubclass(cls, DataError):
        return DataError(msg)
    if issubclass(cls, errors.ConfigError):
        parts = _CONFIG_MESSAGE.match(msg)
        return errors.ConfigError(parts.group(1), parts.group(2)) if parts else RayprivError(msg)
    return cls(msg)


def find_raypriv_error(exc: BaseException) -> RayprivError | None:
    """The original :class:`RayprivError` inside a (possibly Ray-wrapped) exception, or None."""
    stack: list[Any] = [exc]
    seen: set[int] = set()
    while stack:
        e = stack.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, RayprivError) and not _is_ray_wrapper(e):
            return _clean(e)
        stack.extend([e.__context__, e.__cause__, getattr(e, "cause", None)])
    # The cause chain is lost when Ray pickles a wrapped exception: parse the trace text.
    return _from_text(str(exc))


@contextlib.contextmanager
def unwrap_errors():
    """Re-raise a raypriv error found inside any exception raised in the block, unwrapped."""
    try:
        yield
    except Exception as e:  # noqa: BLE001 - re-raised below
        if isinstance(e, RayprivError) and not _is_ray_wrapper(e):
            raise
        found = find_raypriv_error(e)
        if found is None:
            raise
        raise found from e


def run(ds, action: Callable[[Any], Any]) -> Any:
    """Run ``action(ds)`` (an executing call such as ``materialize``/``take_all``) so that
    UDF exceptions are shipped as themselves, and unwrap any raypriv error."""
    import ray

    ctx = ds.context
    old = ctx.raise_original_map_exception
    ctx.raise_original_map_exception = True
    try:
        with unwrap_errors():
            result = action(ds)
    finally:
        ctx.raise_original_map_exception = old
    if isinstance(result, ray.data.Dataset):
        result.context.raise_original_map_exception = old
    return result


def run_entry_point(fn: Callable[[], int | None], *, name: str, verbose: bool = False) -> int:
    """Run a command or job entry point and turn what it raises into an exit status and one
    line on stderr: ``NAME: error: ...`` with the raypriv error (status 2), or with the last
    line of any other error (status 1). ``verbose`` also prints the whole traceback."""
    import sys
    import traceback

    try:
        return fn() or 0
    except KeyboardInterrupt:
        print(f"{name}: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001 - every error ends here, as one line
        if verbose:
            traceback.print_exc()
        found = e if isinstance(e, RayprivError) and not _is_ray_wrapper(e) else find_raypriv_error(e)
        if found is not None:
            print(f"{name}: error: {found}", file=sys.stderr)
            return 2
        text = str(e).strip()
        last = text.splitlines()[-1] if text else ""
        hint = "" if verbose else " (run with --verbose for the traceback)"
        print(f"{name}: error: {type(e).__name__}{': ' + last if last else ''}{hint}", file=sys.stderr)
        return 1
