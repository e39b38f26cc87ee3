"""The raypriv exception family.

Every error raised for bad input or bad settings derives from :class:`RayprivError`
and names the offending file, row or field, so a user can fix it without reading code.

>>> from raypriv.errors import ConfigError
>>> try:
...     raise ConfigError("epsilon", "must be in (0, 1], got 8")
... except ValueError as e:
...     print(e)
invalid epsilon: must be in (0, 1], got 8
"""
from __future__ import annotations


class RayprivError(Exception):
    """Base class of all raypriv errors."""


class DataError(RayprivError, ValueError):
    """The input data is unusable: corrupt or mixed-size images, bad labels, empty corpus.

    ``item`` names the offending file, row id or source so the message can point at it.
    """

    def __init__(self, message: str, *, item: str | None = None):
        self.item = item
        super().__init__(f"{item}: {message}" if item else message)


class ConfigError(RayprivError, ValueError):
    """A parameter is invalid; ``field`` names it."""

    def __init__(self, field: str, message: str):
        self.field = field
        super().__init__(f"invalid {field}: {message}")


class ArtifactError(RayprivError):
    """An output or checkpoint directory is missing, incomplete or does not match the request."""
