"""What the knowledge graph is built from (:class:`GraphInputs`) and how (:class:`GraphParams`): the inputs of
:func:`interestrec.graph.kg.assemble_graph`, shared with :mod:`interestrec.graph.kg_attributes`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from interestrec.configcheck import check_config

TagEvents = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]  # (user_idx, item_idx, time, tag)


@dataclass(frozen=True)
class GraphInputs:
    """What the knowledge graph is built from, in index space (see :func:`assemble_graph`).

    Attributes:
        user_ids / item_ids: sorted original ids; node ``n`` of a type has id ``ids[n]``.
        inter_user / inter_item / inter_time / inter_weight: interactions as node indices, their UTC
            times and weights (``None`` = 1).
        items: catalog table (``item_id``, ``year``, ``genres``, ``tags``) or ``None``.
        tag_events: ``(user_idx, item_idx, time, tag)`` arrays of tag events, or ``None`` to take item
            tags from the catalog (and no user→tag edges).
        item_vectors / user_vectors: aligned node features, optional.
        user_cluster: cluster of each user (``-1`` = none), optional.

    Shapes:
        user_ids: ``(n_users,)``; item_ids: ``(n_items,)``; inter_*: ``(m,)``; tag_events arrays: ``(t,)``;
        item_vectors: ``(n_items, d)``; user_vectors: ``(n_users, d)``; user_cluster: ``(n_users,)``.
    """

    user_ids: np.ndarray
    item_ids: np.ndarray
    inter_user: np.ndarray
    inter_item: np.ndarray
    inter_time: np.ndarray
    inter_weight: np.ndarray | None = None
    items: Any = None
    tag_events: TagEvents | None = None
    item_vectors: np.ndarray | None = None
    user_vectors: np.ndarray | None = None
    user_cluster: np.ndarray | None = None


@dataclass(frozen=True)
class GraphParams:
    """How the knowledge graph is built.

    Attributes:
        max_tags: tags kept per item (its most used ones; the first ones of a catalog list).
        user_tags: add ``user –uses_tag→ tag`` edges from the tag events.
        recent: also add ``user –recent→ item`` for each user's last ``recent`` interactions (by time),
            with ``rates_id`` = the position of the same edge in ``rates`` (0 = no such relation).
    """

    max_tags: int = 5
    user_tags: bool = True
    recent: int = 0

    def __post_init__(self) -> None:
        check_config(self, "graph.kg", ge={"max_tags": 0, "recent": 0})
