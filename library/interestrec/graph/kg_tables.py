"""The knowledge graph of a pipeline output's tables: ingest events and items, encode-stage vectors and
cluster assignments become :class:`~interestrec.graph.kg.GraphInputs` for
:func:`~interestrec.graph.kg.assemble_graph` (the schema is described there)."""

from __future__ import annotations

import numpy as np

from interestrec.data.schema import INTERACTION_KINDS
from interestrec.graph.kg import assemble_graph
from interestrec.graph.kg_inputs import GraphInputs, GraphParams, TagEvents
from interestrec.ids import align, lookup


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


def build_graph(events, items, item_vectors=None, user_vectors=None, clusters=None, max_time: int | None = None, *,
                splits: tuple[str, ...] = ("train",), user_ids: np.ndarray | None = None,
                item_ids: np.ndarray | None = None, params: GraphParams | None = None):
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
        params: tag and ``recent`` settings (:class:`GraphParams`; default ``GraphParams()``).

    Shapes:
        item_vectors / user_vectors as arrays: ``(n_items, d)`` / ``(n_users, d)``.

    Returns:
        ``HeteroData`` (ids in ``graph["user"].node_id`` / ``graph["item"].node_id``).
    """
    cols = set(events.column_names)
    missing = {"user_id", "item_id", "timestamp", "event", "split"} - cols
    if missing:
        raise ValueError(f"events table lacks columns {sorted(missing)}")
    ev_user, ev_item, ev_time = (events[c].to_numpy() for c in ("user_id", "item_id", "timestamp"))
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
    tags = _tag_events(events, learn & (ev_kind == "tag") & (uidx >= 0) & (iidx >= 0), uidx, iidx, ev_time)
    inputs = GraphInputs(user_ids, item_ids, uidx[m], iidx[m], ev_time[m], weight[m], items, tags,
                         aligned_vectors(item_vectors, item_ids, "item_id", "item_vectors"),
                         aligned_vectors(user_vectors, user_ids, "user_id", "user_vectors"),
                         None if clusters is None else _user_clusters(clusters, user_ids))
    return assemble_graph(inputs, params)


def _tag_events(events, rows: np.ndarray, uidx: np.ndarray, iidx: np.ndarray, ev_time: np.ndarray) -> TagEvents | None:
    """``(user_idx, item_idx, time, tag)`` of the tag events among ``rows`` with a non-blank ``text``
    (stripped, lower-cased); ``None`` when the table has no ``text`` column.

    Shapes:
        rows / uidx / iidx / ev_time: ``(n_events,)``; returns four ``(t,)`` arrays.
    """
    if "text" not in events.column_names:
        return None
    text = np.asarray(events["text"].to_numpy(zero_copy_only=False), dtype=object)
    t = rows & np.asarray([x is not None and str(x).strip() != "" for x in text])
    return uidx[t], iidx[t], ev_time[t], np.asarray([str(x).strip().lower() for x in text[t]], dtype=object)


def _user_clusters(clusters, user_ids: np.ndarray) -> np.ndarray:
    """Each user's cluster from an ``assignments`` table (``user_id``, ``cluster``); ``-1`` when absent.

    Shapes:
        user_ids: ``(n_users,)``; returns ``(n_users,)`` int64.
    """
    cluster = np.full(len(user_ids), -1, np.int64)
    pos = lookup(user_ids, clusters["user_id"].to_numpy())
    cluster[pos[pos >= 0]] = clusters["cluster"].to_numpy()[pos >= 0]
    return cluster
