"""The knowledge graph: users, items and their attributes as a PyG ``HeteroData``.

Node types: ``user``, ``item``, ``genre``, ``tag``, ``decade`` (+ ``cluster`` when cluster assignments are
given). Edges: user→item (interactions, with ``time`` and ``weight``), item→genre, item→tag,
item→decade, user→tag, user→cluster, and a reverse relation ``rev_<name>`` for each.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class GraphIndex:
    """Dense node indices ↔ original ids."""

    user_ids: np.ndarray
    item_ids: np.ndarray
    genres: list[str]
    tags: list[str]
    decades: list[int]


def _index(values: np.ndarray, keys: np.ndarray) -> np.ndarray:
    pos = np.searchsorted(keys, values)
    return np.minimum(pos, len(keys) - 1)


def build_graph(user_ids: np.ndarray, item_ids: np.ndarray, inter_user: np.ndarray, inter_item: np.ndarray,
                inter_time: np.ndarray, items, tag_events=None, item_vectors: np.ndarray | None = None,
                user_vectors: np.ndarray | None = None, user_cluster: np.ndarray | None = None, max_tags: int = 5):
    """Build the heterogeneous graph from index-space interactions and the item catalog.

    Args:
        user_ids / item_ids: sorted original ids defining node order.
        inter_user / inter_item / inter_time: training interactions as node indices. Shapes ``(m,)``.
        items: catalog table (``item_id``, ``year``, ``genres``, ``tags``).
        tag_events: optional ``(user_idx, tag string)`` pairs for user→tag edges.
        item_vectors / user_vectors: node features ``(n, d)`` (e.g. LLM vectors), optional.
        user_cluster: cluster of each user (``-1`` = none), optional.

    Returns:
        ``(HeteroData, GraphIndex)``.
    """
    import torch
    from torch_geometric.data import HeteroData

    cat = items.select(["item_id", "year", "genres", "tags"]).to_pandas()
    cat = cat[cat.item_id.isin(item_ids)]
    ii = _index(cat.item_id.to_numpy(), item_ids)
    genres = sorted({g for gs in cat.genres if gs is not None for g in gs})
    tags = sorted({t for ts in cat.tags if ts is not None for t in list(ts)[:max_tags]})
    decades = sorted({int(y) // 10 * 10 for y in cat.year.dropna()})
    g_of, t_of, d_of = {g: n for n, g in enumerate(genres)}, {t: n for n, t in enumerate(tags)}, {d: n for n, d in enumerate(decades)}
    ig = [(i, g_of[g]) for i, gs in zip(ii, cat.genres) if gs is not None for g in gs]
    it = [(i, t_of[t]) for i, ts in zip(ii, cat.tags) if ts is not None for t in list(ts)[:max_tags]]
    idec = [(i, d_of[int(y) // 10 * 10]) for i, y in zip(ii, cat.year) if y == y and y is not None]

    data = HeteroData()
    data["user"].num_nodes = len(user_ids)
    data["item"].num_nodes = len(item_ids)
    data["genre"].num_nodes = max(len(genres), 1)
    data["tag"].num_nodes = max(len(tags), 1)
    data["decade"].num_nodes = max(len(decades), 1)
    if item_vectors is not None:
        data["item"].x = torch.as_tensor(item_vectors, dtype=torch.float32)
    if user_vectors is not None:
        data["user"].x = torch.as_tensor(user_vectors, dtype=torch.float32)

    def edges(pairs) -> torch.Tensor:
        return torch.as_tensor(np.asarray(pairs, dtype=np.int64).reshape(-1, 2).T.copy())

    def add(src: str, rel: str, dst: str, ei: torch.Tensor) -> None:
        data[src, rel, dst].edge_index = ei
        data[dst, f"rev_{rel}", src].edge_index = ei.flip(0)

    ui = torch.as_tensor(np.stack([inter_user, inter_item]).astype(np.int64))
    add("user", "rates", "item", ui)
    data["user", "rates", "item"].time = torch.as_tensor(np.asarray(inter_time, dtype=np.int64))
    add("item", "has_genre", "genre", edges(ig))
    add("item", "has_tag", "tag", edges(it))
    add("item", "in_decade", "decade", edges(idec))
    if tag_events is not None and len(tag_events[0]):
        ut = [(u, t_of[t]) for u, t in zip(*tag_events) if t in t_of]
        add("user", "uses_tag", "tag", edges(ut))
    if user_cluster is not None:
        k = int(user_cluster.max()) + 1 if (user_cluster >= 0).any() else 1
        data["cluster"].num_nodes = k
        m = user_cluster >= 0
        add("user", "in_cluster", "cluster", edges(np.stack([np.flatnonzero(m), user_cluster[m]], 1)))
    return data, GraphIndex(user_ids, item_ids, genres, tags, decades)
