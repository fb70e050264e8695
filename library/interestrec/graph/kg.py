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
"""

from __future__ import annotations

import numpy as np

from interestrec.ids import align, lookup

INTERACTION_KINDS = ("view", "click", "rate", "purchase")


def _edges(src: np.ndarray, dst: np.ndarray):
    import torch

    return torch.as_tensor(np.stack([np.asarray(src, np.int64), np.asarray(dst, np.int64)]))


def _explode(ids: np.ndarray, lists, limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(id, element)`` pairs of a list column, keeping the first ``limit`` elements of each list."""
    rows, vals = [], []
    for i, xs in zip(ids, lists):
        if xs is None:
            continue
        xs = list(xs)[:limit] if limit else list(xs)
        rows.extend([i] * len(xs))
        vals.extend(xs)
    return np.asarray(rows, np.int64), np.asarray(vals, dtype=object)


def aligned_vectors(vectors, ids: np.ndarray, id_col: str, what: str) -> np.ndarray | None:
    """Feature matrix aligned with ``ids`` from an array or an ``(id, vector)`` Arrow table; zeros when missing."""
    if vectors is None:
        return None
    if isinstance(vectors, np.ndarray):
        if vectors.ndim != 2 or len(vectors) != len(ids):
            raise ValueError(f"{what} must be (n={len(ids)}, d), got {vectors.shape}")
        return vectors.astype(np.float32)
    from interestrec import artifacts

    if id_col not in vectors.column_names or "vector" not in vectors.column_names:
        raise ValueError(f"{what} table needs columns '{id_col}' and 'vector', got {vectors.column_names}")
    if "window" in vectors.column_names:
        vectors = vectors.filter(np.asarray(vectors["window"].to_numpy()) == -1)
    return align(vectors[id_col].to_numpy(), artifacts.arrow_to_vectors(vectors["vector"]), ids)


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


def assemble_graph(user_ids: np.ndarray, item_ids: np.ndarray, inter_user: np.ndarray, inter_item: np.ndarray,
                   inter_time: np.ndarray, inter_weight: np.ndarray | None, items=None,
                   tag_events: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None,
                   item_vectors: np.ndarray | None = None, user_vectors: np.ndarray | None = None,
                   user_cluster: np.ndarray | None = None, max_tags: int = 5, user_tags: bool = True,
                   recent: int = 0):
    """The heterogeneous graph from index-space interactions (the core :func:`build_graph` wraps).

    Args:
        user_ids / item_ids: sorted original ids; node ``n`` of a type has id ``ids[n]``.
        inter_user / inter_item / inter_time / inter_weight: interactions as node indices, their UTC
            times and weights (``None`` = 1).
        items: catalog table (``item_id``, ``year``, ``genres``, ``tags``) or ``None``.
        tag_events: ``(user_idx, item_idx, time, tag)`` arrays of tag events, or ``None`` to take item
            tags from the catalog (and no user→tag edges).
        item_vectors / user_vectors: aligned node features, optional.
        user_cluster: cluster of each user (``-1`` = none), optional.
        recent: also add ``user –recent→ item`` for each user's last ``recent`` interactions (by time),
            with ``rates_id`` = the position of the same edge in ``rates`` (0 = no such relation).

    Shapes:
        inter_*: ``(m,)``; item_vectors: ``(n_items, d)``; user_vectors: ``(n_users, d)``;
        user_cluster: ``(n_users,)``; tag_events arrays: ``(t,)``.

    Returns:
        ``HeteroData``.
    """
    import torch
    from torch_geometric.data import HeteroData

    n_users, n_items = len(user_ids), len(item_ids)
    inter_user, inter_item = np.asarray(inter_user, np.int64), np.asarray(inter_item, np.int64)
    for name, idx, n in (("inter_user", inter_user, n_users), ("inter_item", inter_item, n_items)):
        if len(idx) and (idx.min() < 0 or idx.max() >= n):
            raise ValueError(f"{name} has indices outside [0, {n})")
    if not len(inter_user) == len(inter_item) == len(inter_time):
        raise ValueError("inter_user, inter_item and inter_time must have the same length")

    genre_pairs = (np.zeros(0, np.int64), np.zeros(0, object))
    decade_pairs = (np.zeros(0, np.int64), np.zeros(0, np.int64))
    catalog_tags = (np.zeros(0, np.int64), np.zeros(0, object))
    if items is not None:
        cols = set(items.column_names)
        ids = items["item_id"].to_numpy()
        ii = lookup(item_ids, ids)
        keep = ii >= 0
        if "genres" in cols:
            genre_pairs = _explode(ii[keep], np.asarray(items["genres"].to_pylist(), dtype=object)[keep])
        if "year" in cols:
            year = np.asarray(items["year"].to_numpy(zero_copy_only=False), dtype=float)[keep]
            ok = np.isfinite(year)
            decade_pairs = (ii[keep][ok], (year[ok] // 10 * 10).astype(np.int64))
        if "tags" in cols and tag_events is None:
            catalog_tags = _explode(ii[keep], np.asarray(items["tags"].to_pylist(), dtype=object)[keep], max_tags)

    if tag_events is not None:
        tu, ti, tt, tag = (np.asarray(a) for a in tag_events)
        tag = tag.astype(str)
        # item→tag: each item's most used tags (ties by name)
        counts: dict[tuple[int, str], int] = {}
        for i, t in zip(ti, tag):
            counts[(int(i), t)] = counts.get((int(i), t), 0) + 1
        by_item: dict[int, list[tuple[int, str]]] = {}
        for (i, t), c in counts.items():
            by_item.setdefault(i, []).append((-c, t))
        it_rows, it_tags = [], []
        for i, lst in by_item.items():
            for _, t in sorted(lst)[:max_tags]:
                it_rows.append(i)
                it_tags.append(t)
        item_tag = (np.asarray(it_rows, np.int64), np.asarray(it_tags, dtype=object))
    else:
        item_tag = catalog_tags
        tu = ti = tt = tag = np.zeros(0)

    genres = sorted({str(g) for g in genre_pairs[1]})
    decades = sorted({int(d) for d in decade_pairs[1]})
    tags = sorted({str(t) for t in item_tag[1]} | ({str(t) for t in tag} if user_tags else set()))

    data = HeteroData()
    data["user"].num_nodes = n_users
    data["item"].num_nodes = n_items
    data["user"].node_id = torch.as_tensor(np.asarray(user_ids, np.int64))
    data["item"].node_id = torch.as_tensor(np.asarray(item_ids, np.int64))
    for t, names in (("genre", genres), ("tag", tags), ("decade", decades)):
        data[t].num_nodes = max(len(names), 1)  # one placeholder node keeps the schema fixed
        data[t].names = list(names)
    if item_vectors is not None:
        data["item"].x = torch.as_tensor(np.asarray(item_vectors, np.float32))
    if user_vectors is not None:
        data["user"].x = torch.as_tensor(np.asarray(user_vectors, np.float32))

    def add(src: str, rel: str, dst: str, s: np.ndarray, d: np.ndarray, **attrs) -> None:
        ei = _edges(s, d)
        data[src, rel, dst].edge_index = ei
        data[dst, f"rev_{rel}", src].edge_index = ei.flip(0)
        for k, v in attrs.items():
            data[src, rel, dst][k] = v
            data[dst, f"rev_{rel}", src][k] = v

    w = np.ones(len(inter_user), np.float32) if inter_weight is None else np.asarray(inter_weight, np.float32)
    add("user", "rates", "item", inter_user, inter_item,
        time=torch.as_tensor(np.asarray(inter_time, np.int64)), weight=torch.as_tensor(w))
    if recent > 0:
        ids = recent_edges(inter_user, np.asarray(inter_time, np.int64), inter_item, recent)
        add("user", "recent", "item", inter_user[ids], inter_item[ids],
            time=torch.as_tensor(np.asarray(inter_time, np.int64)[ids]), rates_id=torch.as_tensor(ids))
    add("item", "has_genre", "genre", genre_pairs[0], lookup(np.asarray(genres, dtype=object), genre_pairs[1].astype(object)) if genres else genre_pairs[0])
    add("item", "in_decade", "decade", decade_pairs[0], lookup(np.asarray(decades, np.int64), decade_pairs[1]))
    tag_keys = np.asarray(tags, dtype=object)
    add("item", "has_tag", "tag", item_tag[0], lookup(tag_keys, item_tag[1].astype(object)) if tags else item_tag[0])
    if user_tags:
        if len(tu):
            # one edge per (user, tag), timed at its first use
            tid = lookup(tag_keys, tag.astype(object))
            order = np.lexsort((np.asarray(tt, np.int64), tid, np.asarray(tu, np.int64)))
            u_s, t_s, time_s = np.asarray(tu, np.int64)[order], tid[order], np.asarray(tt, np.int64)[order]
            first = np.r_[True, (u_s[1:] != u_s[:-1]) | (t_s[1:] != t_s[:-1])]
            add("user", "uses_tag", "tag", u_s[first], t_s[first], time=torch.as_tensor(time_s[first]))
        else:
            add("user", "uses_tag", "tag", np.zeros(0, np.int64), np.zeros(0, np.int64), time=torch.zeros(0, dtype=torch.long))
    if user_cluster is not None:
        user_cluster = np.asarray(user_cluster, np.int64)
        if len(user_cluster) != n_users:
            raise ValueError(f"user_cluster must have one entry per user ({n_users}), got {len(user_cluster)}")
        k = int(user_cluster.max()) + 1 if (user_cluster >= 0).any() else 1
        data["cluster"].num_nodes = k
        data["cluster"].names = list(range(k))
        m = user_cluster >= 0
        add("user", "in_cluster", "cluster", np.flatnonzero(m), user_cluster[m])
    return data


def build_graph(events, items, item_vectors=None, user_vectors=None, clusters=None, max_time: int | None = None, *,
                splits: tuple[str, ...] = ("train",), user_ids: np.ndarray | None = None,
                item_ids: np.ndarray | None = None, max_tags: int = 5, user_tags: bool = True, recent: int = 0):
    """The knowledge graph of an ingest output (see the module docstring).

    Args:
        events: ingest ``events`` table (Arrow) with its ``split`` column.
        items: ingest ``items`` table (Arrow).
        item_vectors / user_vectors: encode-stage tables (``item_id``/``user_id`` + ``vector``; for users
            only ``window == -1`` rows are used) or arrays aligned with the node order; optional.
        clusters: cluster-stage ``assignments`` table (``user_id``, ``cluster``), optional.
        max_time: drop events at or after this UTC time (``None`` = keep all).
        splits: the splits whose events become edges (``("train",)`` for validation, ``("train",
            "valid")`` for the test phase).
        user_ids / item_ids: node order (sorted original ids); default every user with an interaction
            and every catalog or event item.
        max_tags / user_tags / recent: see :func:`assemble_graph`.

    Returns:
        ``HeteroData`` (ids in ``graph["user"].node_id`` / ``graph["item"].node_id``).
    """
    cols = set(events.column_names)
    missing = {"user_id", "item_id", "timestamp", "event", "split"} - cols
    if missing:
        raise ValueError(f"events table lacks columns {sorted(missing)}")
    ev_user = events["user_id"].to_numpy()
    ev_item = events["item_id"].to_numpy()
    ev_time = events["timestamp"].to_numpy()
    ev_kind = np.asarray(events["event"].to_numpy(zero_copy_only=False)).astype(str)
    ev_split = np.asarray(events["split"].to_numpy(zero_copy_only=False)).astype(str)
    is_inter = np.isin(ev_kind, INTERACTION_KINDS)
    if user_ids is None:
        user_ids = np.unique(ev_user[is_inter])
    if item_ids is None:
        item_ids = np.unique(np.r_[items["item_id"].to_numpy(), ev_item])
    user_ids, item_ids = np.asarray(user_ids, np.int64), np.asarray(item_ids, np.int64)
    learn = np.isin(ev_split, splits) & (ev_time < max_time if max_time is not None else True)
    uidx, iidx = lookup(user_ids, ev_user), lookup(item_ids, ev_item)
    unknown = learn & is_inter & ((uidx < 0) | (iidx < 0))
    if unknown.any():
        raise ValueError(f"{int(unknown.sum())} interactions reference users/items outside the node set")
    m = learn & is_inter
    value = events["value"].to_numpy(zero_copy_only=False) if "value" in cols else np.full(len(ev_user), np.nan)
    value = np.asarray(value, dtype=float)
    weight = np.where((ev_kind == "rate") & np.isfinite(value), value / 5.0, 1.0).astype(np.float32)
    tag_events = None
    if "text" in cols:
        t = learn & (ev_kind == "tag") & (uidx >= 0) & (iidx >= 0)
        text = np.asarray(events["text"].to_numpy(zero_copy_only=False), dtype=object)
        t &= np.asarray([x is not None and str(x).strip() != "" for x in text])
        tag_events = (uidx[t], iidx[t], ev_time[t], np.asarray([str(x).strip().lower() for x in text[t]], dtype=object))
    cluster = None
    if clusters is not None:
        cluster = np.full(len(user_ids), -1, np.int64)
        pos = lookup(user_ids, clusters["user_id"].to_numpy())
        cluster[pos[pos >= 0]] = clusters["cluster"].to_numpy()[pos >= 0]
    return assemble_graph(user_ids, item_ids, uidx[m], iidx[m], ev_time[m], weight[m], items, tag_events,
                          aligned_vectors(item_vectors, item_ids, "item_id", "item_vectors"),
                          aligned_vectors(user_vectors, user_ids, "user_id", "user_vectors"), cluster, max_tags, user_tags,
                          recent)
