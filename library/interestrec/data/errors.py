"""The data package's errors (readers, validation, id resolution)."""

from __future__ import annotations

from interestrec.errors import InterestrecError


class DataError(InterestrecError):
    """Input data that cannot be read as asked; the message names the file or setting and the fix."""


class DataNotFoundError(DataError, FileNotFoundError):
    """No dataset at the given path or any default location."""
