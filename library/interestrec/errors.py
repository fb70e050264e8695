"""The root of the package's exceptions.

Each package owns its errors (``interestrec.data.errors``, ``interestrec.recommend.errors``, …), every one a
subclass of :class:`InterestrecError`, so a caller can catch "anything interestrec refused, with a message
meant for a person" in one clause while lower layers never import the orchestration
(:class:`interestrec.stages.StageError` is itself one of them).
"""

from __future__ import annotations


class InterestrecError(Exception):
    """A failure with a message meant for the user (what was wrong and, where there is one, the fix)."""


class UnknownIdError(InterestrecError, KeyError):
    """The one "unknown id" error: a user, item or cluster id (or an index) the data does not know.

    ``interestrec.ids`` raises it for ids outside an :class:`~interestrec.ids.IdMap`; the recommend and serving
    packages know it as ``NotFound`` and ``UnknownId`` (the same class), and the HTTP layer answers 404 with
    its message. Its message is shown as given, not as ``KeyError``'s quoted repr.
    """

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown id"
