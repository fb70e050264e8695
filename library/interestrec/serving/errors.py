"""The serving package's errors; the HTTP layer maps each to its status code."""

from __future__ import annotations

from interestrec.errors import InterestrecError, UnknownIdError


class InvalidId(InterestrecError, ValueError):
    """An id that cannot be one of this dataset's: a non-numeric string where ids are int64 (422)."""


UnknownId = UnknownIdError  # an original id the served data does not know: the one unknown-id error (404)


class StoreError(InterestrecError, RuntimeError):
    """The store could not durably apply or read, or did not confirm a write (the HTTP layer answers 503 with
    ``Retry-After``; a retry with the same idempotency key applies a batch at most once)."""


class KeyConflict(InterestrecError, ValueError):
    """An idempotency key reused for a different batch (the HTTP layer answers 409)."""


class Unauthorized(InterestrecError):
    """Missing or wrong bearer token (401)."""


class Unavailable(InterestrecError):
    """A dependency (encoder, store) is temporarily unavailable (503)."""


class Forbidden(InterestrecError):
    """A request this caller may not make, whatever its token for other endpoints (403)."""


class Busy(InterestrecError):
    """This replica's pool for heavy requests (batches, MMR) is full: retry shortly (429 with ``Retry-After``)."""
