"""Describing clusters by what over-represents them: genres, tags and items ranked by lift.

Descriptions are built from summed counts (:class:`~interestrec.dynamics.counts.ClusterCounts`), so the
events can be counted part by part where they lie; :func:`describe_clusters` is the one-table form.
The per-event reference is :func:`interestrec.dynamics.reference.describe_clusters_reference`.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from interestrec.dynamics.counts import ClusterCounts, count_events, group_sum, membership


def lift_table(cluster_counts: Mapping, overall_counts: Mapping, n_cluster: float, n_overall: float,
               min_support: float = 3, top: int = 5) -> list[tuple]:
    """``(term, lift, count)`` of the terms most over-represented in a cluster (the package's one lift).

    ``lift = (count_in_cluster / n_cluster) / (count_overall / n_overall)``; terms seen fewer than
    ``min_support`` times in the cluster are ignored. Ordered by lift, then count, then term. Used for the
    dynamics stage's cluster descriptions and the served ``/clusters`` genre profile.
    """
    rows = []
    for term, c in cluster_counts.items():
        if c < min_support or not overall_counts.get(term):
            continue
        rows.append((term, (c / n_cluster) / (overall_counts[term] / n_overall), c))
    rows.sort(key=lambda r: (-r[1], -r[2], str(r[0])))
    return rows[:top]


def catalog_maps(items) -> tuple[dict, dict, dict]:
    """``item_id →`` genres, tags and title of the catalog (``None`` where missing)."""
    cat = items.select(["item_id", "title", "genres", "tags"]).to_pandas().set_index("item_id")
    return cat.genres.to_dict(), cat.tags.to_dict(), cat.title.to_dict()


def term_counts(counts: ClusterCounts, attr: dict, first: int | None = None) -> tuple[list, np.ndarray, np.ndarray, np.ndarray]:
    """Events per ``(cluster, term)``: each event counts once for every distinct term of its item.

    Args:
        attr: ``item_id →`` list of terms (or ``None``); only the first ``first`` terms count when given.

    Returns:
        ``(terms, cluster, term_index, events)``: the term vocabulary and the summed rows.

    Shapes:
        cluster, term_index, events: ``(g,)``.
    """
    items, inv = np.unique(counts.item, return_inverse=True)
    vocab: dict = {}
    lens = np.zeros(len(items), np.int64)
    flat: list[int] = []
    for j, i in enumerate(items.tolist()):
        vals = attr.get(i)
        if vals is None:
            continue
        ids = [vocab.setdefault(t, len(vocab)) for t in set(vals[:first] if first else vals)]
        lens[j] = len(ids)
        flat.extend(ids)
    per_row = lens[inv]
    rows = np.repeat(np.arange(len(inv)), per_row)
    within = np.arange(len(rows)) - np.repeat(np.cumsum(per_row) - per_row, per_row)
    starts = (np.cumsum(lens) - lens)[inv]
    term = np.asarray(flat, np.int64)[starts[rows] + within] if len(rows) else np.zeros(0, np.int64)
    (c, t), n = group_sum((counts.cluster[rows], term), counts.events[rows])
    return list(vocab), c, t, n


def _per_cluster(cluster: np.ndarray, keys: list, values: np.ndarray, clusters: list[int]) -> dict[int, dict]:
    """``cluster → {key: value}`` from rows sorted by cluster."""
    lo = np.searchsorted(cluster, clusters, side="left")
    hi = np.searchsorted(cluster, clusters, side="right")
    return {c: dict(zip(keys[a:b], values[a:b].tolist())) for c, a, b in zip(clusters, lo.tolist(), hi.tolist())}


def describe_counts(counts: ClusterCounts, items, top: int = 5) -> dict[int, dict]:
    """Top genres / tags / items by lift for each cluster with events, and a one-line description.

    Genre (tag) counts are, per cluster, the sum over items of the item's events times its distinct
    genres (first five tags); lifts are against all the counted events. Output as
    :func:`interestrec.dynamics.reference.describe_clusters_reference`, keyed by cluster id ascending.

    Args:
        counts: the window's summed counts.
        items: item catalog (``item_id``, ``title``, ``genres``, ``tags``).
    """
    genres, tags, titles = catalog_maps(items)
    clusters = np.unique(counts.cluster).tolist()
    lo = np.searchsorted(counts.cluster, clusters, side="left")
    hi = np.searchsorted(counts.cluster, clusters, side="right")
    sizes = np.add.reduceat(counts.events, lo).tolist() if clusters else []
    n_all = max(int(counts.events.sum()), 1)
    users = dict(zip(counts.user_cluster.tolist(), counts.users.tolist()))
    tables = {}
    for name, attr, first in (("genres", genres, None), ("tags", tags, 5)):
        terms, c, t, n = term_counts(counts, attr, first)
        keys = [terms[j] for j in t.tolist()]
        (tt,), overall = group_sum((t,), n)
        tables[name] = (_per_cluster(c, keys, n, clusters), {terms[j]: v for j, v in zip(tt.tolist(), overall.tolist())})
    (oi,), on = group_sum((counts.item,), counts.events)
    all_i = dict(zip(oi.tolist(), on.tolist()))
    out = {}
    for cid, a, b, n in zip(clusters, lo.tolist(), hi.tolist(), sizes):
        ms_i = max(2, n // 200)
        keep = counts.events[a:b] >= ms_i  # rarer items can never make the table
        frame_i = dict(zip(counts.item[a:b][keep].tolist(), counts.events[a:b][keep].tolist()))
        g = lift_table(tables["genres"][0][cid], tables["genres"][1], n, n_all, min_support=max(3, n // 50), top=top)
        t = lift_table(tables["tags"][0][cid], tables["tags"][1], n, n_all, min_support=max(2, n // 200), top=top)
        it = lift_table(frame_i, all_i, n, n_all, min_support=ms_i, top=top)
        out[int(cid)] = cluster_entry(g, t, it, titles, int(users[cid]))
    return out


def cluster_entry(genres: list[tuple], tags: list[tuple], items: list[tuple], titles: Mapping, users: int) -> dict:
    """One cluster's description dict from its ``lift_table`` rows (genres, tags, items) and user count."""
    lead = {w.lower() for w in (y[0] for y in genres[:2])}
    words = [x[0] for x in genres[:2]] + [x[0] for x in tags[:2] if x[0] not in lead]
    return {
        "description": ", ".join(words) if words else "mixed interests",
        "top_genres": [{"genre": x, "lift": round(lift, 2), "events": c} for x, lift, c in genres],
        "top_tags": [{"tag": x, "lift": round(lift, 2), "events": c} for x, lift, c in tags],
        "top_items": [{"item_id": int(x), "title": titles.get(x, str(x)), "lift": round(lift, 2), "events": c}
                      for x, lift, c in items],
        "users": users,
    }


def describe_clusters(user_ids: np.ndarray, stable: np.ndarray, events, items, top: int = 5) -> dict[int, dict]:
    """Top genres / tags / items by lift for each cluster, and a one-line description.

    Args:
        user_ids / stable: each user's stable cluster id (one window). Shapes ``(n,)``.
        events: pyarrow table (``user_id``, ``item_id``) — the events behind those users' vectors.
        items: item catalog (``item_id``, ``title``, ``genres``, ``tags``).
    """
    users, st = membership(np.asarray(user_ids), np.asarray(stable))
    counts = count_events(events.column("user_id").to_numpy(), events.column("item_id").to_numpy(), users, st)
    return describe_counts(counts, items, top)
