"""The recommend package's errors (artifact loading and requests to the model)."""

from __future__ import annotations

from interestrec.errors import InterestrecError, UnknownIdError


class ArtifactError(InterestrecError, FileNotFoundError):
    """A required artifact is missing or malformed (the message names the file and its stage)."""


class MissingArtifactError(ArtifactError):
    """A required artifact is absent: its stage has not run (as opposed to an artifact that is there but wrong)."""


class InvalidRequest(InterestrecError, ValueError):
    """A request the model cannot answer as asked (the HTTP layer answers 422)."""


NotFound = UnknownIdError  # an unknown user, item or cluster: the one unknown-id error (the HTTP layer answers 404)
