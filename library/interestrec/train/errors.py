"""The training harness's errors (both are :class:`~interestrec.errors.InterestrecError`)."""

from __future__ import annotations

from interestrec.errors import InterestrecError


class TrainingError(InterestrecError, RuntimeError):
    """Ray Train gave up on a run; the message names each failed worker's own error, by rank.

    A stage subclasses it (together with :class:`~interestrec.stages.StageError`) and passes its class
    to :func:`interestrec.train.fit`, so its callers catch either.
    """


class StorageError(InterestrecError, ValueError):
    """A Ray Train storage location that some worker node cannot reach (a local path on a multi-node cluster)."""
