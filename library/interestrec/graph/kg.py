"""The knowledge graph: users, items and their attributes as a PyG ``HeteroData``.

Node types: ``user``, ``item``, ``genre``, ``tag``, ``decade`` (+ ``cluster`` when cluster assignments
are given). Relations (each with a reverse ``rev_<name>``):

- ``user –rates→ item``: the learnable interactions, with ``time`` (UTC s) and ``weight`` edge attributes;
- ``item –has_genre→ genre``, ``item –in_decade→ decade``: from the catalog;
- ``item –has_tag→ tag`` and ``user –uses_tag→ tag`` (with ``time``): from the tag events of the
  learnable splits (the catalog's tag list is only a fallback when no tag events are given, because it
  aggregates tags from every split);
- ``user –in_cluster→ cluster``: from the cluster stage's assignments.

Id maps are kept in the graph: ``graph[t].node_id`` (original user/item ids) and ``graph[t].names``
(genre, tag and decade labels), so artifacts can be written in original ids.

:func:`assemble_graph` builds it from index-space :class:`GraphInputs` and :class:`GraphParams`;
:func:`interestrec.graph.kg_tables.build_graph` from a pipeline output's tables; the item attributes and tag
uses are gathered by :mod:`interestrec.graph.kg_attributes`.
"""

from __future__ import annotations

import numpy as np

from interestrec.graph.kg_attributes import Attributes, attributes
from interestrec.graph.kg_inputs import GraphInputs, GraphParams
from interestrec.ids import lookup


def _edges(src: np.ndarray, dst: np.ndarray):
    import torch

    return torch.as_tensor(np.stack([np.asarray(src, np.int64), np.asarray(dst, np.int64)]))


def recent_edges(user: np.ndarray, time: np.ndarray, item: np.ndarray, n: int) -> np.ndarray:
    """Positions of every user's last ``n`` interactions (ordered by time, then item).

    Shapes:
        user, time, item: ``(m,)``; returns ``(k,)`` int64 positions, ``k <= m``.
    """
    order = np.lexsort((item, time, user))
    u = user[order]
    counts = np.bincount(u, minlength=int(u.max()) + 1 if len(u) else 0)
    end = np.cumsum(counts)[u]  # exclusive end of each row
    return np.sort(order[np.arange(len(u)) >= end - n]).astype(np.int64)


def assemble_graph(inputs: GraphInputs, params: GraphParams | None = None):
    """The heterogeneous graph from index-space inputs (the core :func:`~interestrec.graph.kg_tables.build_graph` wraps).

    Args:
        inputs: interactions, catalog, tag events, features and clusters (:class:`GraphInputs`).
        params: tag and ``recent`` settings (:class:`GraphParams`; default ``GraphParams()``).

    Shapes:
        see :class:`GraphInputs`.

    Returns:
        ``HeteroData``.

    Raises:
        ValueError: an interaction index outside its node range, interaction arrays of different
            lengths, or ``user_cluster`` not of one entry per user.
    """
    params = params or GraphParams()
    user, item = _checked_interactions(inputs)
    attrs = attributes(inputs, params)
    data = _nodes(inputs, attrs)
    _add_interactions(data, user, item, inputs, params.recent)
    _add_item_attributes(data, attrs)
    if params.user_tags:
        _add_user_tags(data, attrs)
    if inputs.user_cluster is not None:
        _add_clusters(data, inputs.user_cluster, len(inputs.user_ids))
    return data


def _checked_interactions(inputs: GraphInputs) -> tuple[np.ndarray, np.ndarray]:
    """``(inter_user, inter_item)`` as int64, after checking their ranges and the arrays' lengths."""
    user, item = np.asarray(inputs.inter_user, np.int64), np.asarray(inputs.inter_item, np.int64)
    for name, idx, n in (("inter_user", user, len(inputs.user_ids)), ("inter_item", item, len(inputs.item_ids))):
        if len(idx) and (idx.min() < 0 or idx.max() >= n):
            raise ValueError(f"{name} has indices outside [0, {n})")
    if not len(user) == len(item) == len(inputs.inter_time):
        raise ValueError("inter_user, inter_item and inter_time must have the same length")
    return user, item


def _nodes(inputs: GraphInputs, attrs: Attributes):
    """A ``HeteroData`` with every node type, its original ids or labels, and the node features."""
    import torch
    from torch_geometric.data import HeteroData

    data = HeteroData()
    data["user"].num_nodes = len(inputs.user_ids)
    data["item"].num_nodes = len(inputs.item_ids)
    data["user"].node_id = torch.as_tensor(np.asarray(inputs.user_ids, np.int64))
    data["item"].node_id = torch.as_tensor(np.asarray(inputs.item_ids, np.int64))
    for t, names in (("genre", attrs.genres), ("tag", attrs.tags), ("decade", attrs.decades)):
        data[t].num_nodes = max(len(names), 1)  # one placeholder node keeps the schema fixed
        data[t].names = list(names)
    if inputs.item_vectors is not None:
        data["item"].x = torch.as_tensor(np.asarray(inputs.item_vectors, np.float32))
    if inputs.user_vectors is not None:
        data["user"].x = torch.as_tensor(np.asarray(inputs.user_vectors, np.float32))
    return data


def _add_relation(data, src: str, rel: str, dst: str, s: np.ndarray, d: np.ndarray, **attrs) -> None:
    """Add ``src –rel→ dst`` and its reverse ``dst –rev_rel→ src``, both with the edge attributes ``attrs``."""
    ei = _edges(s, d)
    data[src, rel, dst].edge_index = ei
    data[dst, f"rev_{rel}", src].edge_index = ei.flip(0)
    for k, v in attrs.items():
        data[src, rel, dst][k] = v
        data[dst, f"rev_{rel}", src][k] = v


def _add_interactions(data, user: np.ndarray, item: np.ndarray, inputs: GraphInputs, recent: int) -> None:
    """``user –rates→ item`` (``time``, ``weight``) and, when ``recent > 0``, ``user –recent→ item``."""
    import torch

    time = np.asarray(inputs.inter_time, np.int64)
    w = np.ones(len(user), np.float32) if inputs.inter_weight is None else np.asarray(inputs.inter_weight, np.float32)
    _add_relation(data, "user", "rates", "item", user, item, time=torch.as_tensor(time), weight=torch.as_tensor(w))
    if recent > 0:
        ids = recent_edges(user, time, item, recent)
        _add_relation(data, "user", "recent", "item", user[ids], item[ids], time=torch.as_tensor(time[ids]),
                      rates_id=torch.as_tensor(ids))


def _add_item_attributes(data, attrs: Attributes) -> None:
    """``item –has_genre→ genre``, ``item –in_decade→ decade`` and ``item –has_tag→ tag``."""
    genre_rows, genre_names = attrs.genre
    genre_ids = lookup(np.asarray(attrs.genres, dtype=object), genre_names.astype(object)) if attrs.genres else genre_rows
    _add_relation(data, "item", "has_genre", "genre", genre_rows, genre_ids)
    _add_relation(data, "item", "in_decade", "decade", attrs.decade[0],
                  lookup(np.asarray(attrs.decades, np.int64), attrs.decade[1]))
    tag_rows, tag_names = attrs.item_tag
    tag_ids = lookup(np.asarray(attrs.tags, dtype=object), tag_names.astype(object)) if attrs.tags else tag_rows
    _add_relation(data, "item", "has_tag", "tag", tag_rows, tag_ids)


def _add_user_tags(data, attrs: Attributes) -> None:
    """``user –uses_tag→ tag`` (``time``): one edge per (user, tag), timed at its first use."""
    import torch

    tu, _, tt, tag = attrs.user_tag
    if not len(tu):
        _add_relation(data, "user", "uses_tag", "tag", np.zeros(0, np.int64), np.zeros(0, np.int64),
                      time=torch.zeros(0, dtype=torch.long))
        return
    tid = lookup(np.asarray(attrs.tags, dtype=object), tag.astype(object))
    order = np.lexsort((np.asarray(tt, np.int64), tid, np.asarray(tu, np.int64)))
    u_s, t_s, time_s = np.asarray(tu, np.int64)[order], tid[order], np.asarray(tt, np.int64)[order]
    first = np.r_[True, (u_s[1:] != u_s[:-1]) | (t_s[1:] != t_s[:-1])]
    _add_relation(data, "user", "uses_tag", "tag", u_s[first], t_s[first], time=torch.as_tensor(time_s[first]))


def _add_clusters(data, user_cluster: np.ndarray, n_users: int) -> None:
    """``cluster`` nodes and ``user –in_cluster→ cluster`` for every user with a cluster (``>= 0``)."""
    user_cluster = np.asarray(user_cluster, np.int64)
    if len(user_cluster) != n_users:
        raise ValueError(f"user_cluster must have one entry per user ({n_users}), got {len(user_cluster)}")
    k = int(user_cluster.max()) + 1 if (user_cluster >= 0).any() else 1
    data["cluster"].num_nodes = k
    data["cluster"].names = list(range(k))
    m = user_cluster >= 0
    _add_relation(data, "user", "in_cluster", "cluster", np.flatnonzero(m), user_cluster[m])
