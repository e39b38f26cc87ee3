"""Running Ray Data pipelines so that a :class:`DataError` raised in a worker reaches the
caller as itself, not wrapped in ``RayTaskError``/``UserCodeException`` tracebacks."""
from __future__ import annotations

import contextlib
import re
from typing import Any, Callable

from raypriv.errors import DataError

_TRACE_MARK = "raypriv.errors.DataError: "
# Ray Data appends "\nFailed to apply UDF transform after 1/1 attempts ..." to messages.
_RETRY_SUFFIX = re.compile(r"\nFailed to .*? after \d+/\d+ attempts.*", re.S)


def _is_ray_wrapper(exc: BaseException) -> bool:
    try:
        from ray.exceptions import RayTaskError
    except ImportError:  # pragma: no cover
        return False
    return isinstance(exc, RayTaskError)


def _clean(err: DataError) -> DataError:
    """A fresh DataError with Ray's retry annotation removed from the message."""
    msg = str(err.args[0]) if err.args else str(err)
    msg = _RETRY_SUFFIX.sub("", msg)
    item = getattr(err, "item", None)
    if item and msg.startswith(f"{item}: "):
        msg = msg[len(item) + 2 :]
    return type(err)(msg, item=item) if type(err) is DataError else DataError(msg, item=item)


def find_data_error(exc: BaseException) -> DataError | None:
    """The original DataError inside a (possibly Ray-wrapped) exception, or None."""
    stack: list[Any] = [exc]
    seen: set[int] = set()
    while stack:
        e = stack.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, DataError) and not _is_ray_wrapper(e):
            return _clean(e)
        # examine .cause (Ray's original) first
        stack.extend([e.__context__, e.__cause__, getattr(e, "cause", None)])
    # The cause chain is lost when Ray pickles a wrapped exception: parse the trace text.
    text = str(exc)
    idx = text.rfind(_TRACE_MARK)
    if idx >= 0:
        msg = _RETRY_SUFFIX.sub("", text[idx + len(_TRACE_MARK) :]).strip()
        return DataError(msg)
    return None


@contextlib.contextmanager
def unwrap_errors():
    """Re-raise a DataError found inside any exception raised in the block, unwrapped."""
    try:
        yield
    except Exception as e:  # noqa: BLE001 - re-raised below
        if isinstance(e, DataError) and not _is_ray_wrapper(e):
            raise
        found = find_data_error(e)
        if found is None:
            raise
        raise found from None


def run(ds, action: Callable[[Any], Any]) -> Any:
    """Run ``action(ds)`` (an executing call such as ``materialize``/``take_all``) so that
    UDF exceptions are shipped as themselves, and unwrap any DataError."""
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
