"""The one small interface every recommender implements (baselines and ours alike).

Like ``implicit``'s ``RecommenderBase``: ``fit`` on an :class:`Interactions` split and ``score`` a
chunk of users against every item. The evaluation protocol (``interestrec.evaluate.protocol``) does
the chunking, the seen-item filter and top-k; a model only returns dense scores for the users it is
asked about.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np


@dataclass(frozen=True)
class Interactions:
    """Index-space view of the ingest split that models train on.

    Users and items are re-indexed densely (``0..n_users-1``, ``0..n_items-1``); ``user_ids`` and
    ``item_ids`` map back to the original ids.

    Attributes:
        user_ids: original user id of each user index. Shape ``(n_users,)``.
        item_ids: original item id of each item index. Shape ``(n_items,)``.
        train: interactions a model may learn from, as a ``scipy.sparse.csr_matrix``
            ``(n_users, n_items)`` with the event weight (1 for implicit events, the rating for
            ``rate`` events) as values.
        seq_user / seq_item / seq_time: the same training interactions as a time-ordered event list
            (sorted by user, then time), for sequential and temporal models. Shapes ``(nnz,)``.
        target: the held-out item index per user, or -1 when the user has none. Shape ``(n_users,)``.
        artifacts: pipeline output directory, so models can read other stages' artifacts
            (``encode/``, ``graph/``, ``cluster/``); ``None`` in unit tests.
        phase: ``"valid"`` (train → predict validation) or ``"test"`` (train+valid → predict test).
        extras: per-protocol overrides read by models (the cold-item protocol's content-only vectors).
        config: the pipeline's :class:`~interestrec.config.PipelineConfig`, so a row is built from the same
            stage config the pipeline ran with (e.g. GraphSAGE's ``graph`` section); ``None`` = defaults.
    """

    user_ids: np.ndarray
    item_ids: np.ndarray
    train: object
    seq_user: np.ndarray
    seq_item: np.ndarray
    seq_time: np.ndarray
    target: np.ndarray
    artifacts: str | None = None
    phase: str = "valid"
    extras: dict = field(default_factory=dict)
    config: object | None = None

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)


class Recommender(ABC):
    """Base class of every model in the evaluation table.

    Subclasses set ``name`` and ``baseline`` and, when they have hyper-parameters, ``grid`` (a small
    list of keyword dicts tried on the validation split; the best is refit for test). Rows trained in epochs
    set ``epoch_param`` to their budget's parameter and call :meth:`end_epoch` (early stopping of trials).
    """

    name: ClassVar[str] = ""
    baseline: ClassVar[bool] = True
    grid: ClassVar[list[dict]] = [{}]
    epoch_param: ClassVar[str | None] = None

    def __init__(self, **params) -> None:
        self.params = params
        self.epoch_hook: Callable[[int], None] | None = None

    def end_epoch(self, epoch: int) -> None:
        """Rows that train in epochs (``epoch_param`` names their budget) call this after each one, 1-based, with
        the model scorable; it runs ``epoch_hook`` when one is set (an early-stopping trial's validation report).
        The hook must not change what ``fit`` computes."""
        hook = getattr(self, "epoch_hook", None)
        if hook is not None:
            hook(epoch)

    @abstractmethod
    def fit(self, data: Interactions) -> Recommender:
        """Learn from ``data.train`` (and the event list); return ``self``."""

    @abstractmethod
    def score(self, users: np.ndarray) -> np.ndarray:
        """Scores of every item for the given user indices.

        Shapes:
            users: ``(b,)`` int64 user indices.
            returns: ``(b, n_items)`` float32; higher is better.
        """


REGISTRY: dict[str, Callable[..., Recommender]] = {}


def register(cls: type[Recommender]) -> type[Recommender]:
    """Class decorator adding a recommender to the evaluation registry under ``cls.name``."""
    if not cls.name:
        raise ValueError(f"{cls.__qualname__} must set a non-empty `name`")
    REGISTRY[cls.name] = cls
    return cls
