"""The root of the package's exceptions.

Each package owns its errors (``interestrec.data.errors``, ``interestrec.recommend.errors``, …), every one a
subclass of :class:`InterestrecError`, so a caller can catch "anything interestrec refused, with a message
meant for a person" in one clause while lower layers never import the orchestration
(:class:`interestrec.stages.StageError` is itself one of them).
"""

from __future__ import annotations


class InterestrecError(Exception):
    """A failure with a message meant for the user (what was wrong and, where there is one, the fix)."""
