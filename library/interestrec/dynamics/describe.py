"""Describing clusters by what over-represents them: genres, tags and items ranked by lift."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping

import numpy as np


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


def describe_clusters(user_ids: np.ndarray, stable: np.ndarray, events, items, top: int = 5) -> dict[int, dict]:
    """Top genres / tags / items by lift for each cluster, and a one-line description.

    Args:
        user_ids / stable: each user's stable cluster id (one window). Shapes ``(n,)``.
        events: pyarrow table (``user_id``, ``item_id``) — the events behind those users' vectors.
        items: item catalog (``item_id``, ``title``, ``genres``, ``tags``).
    """
    ev = events.select(["user_id", "item_id"]).to_pandas()
    cl = dict(zip(user_ids.tolist(), stable.tolist()))
    ev["cluster"] = ev.user_id.map(cl)
    ev = ev.dropna(subset=["cluster"])
    cat = items.select(["item_id", "title", "genres", "tags"]).to_pandas().set_index("item_id")
    genres = cat.genres.to_dict()
    tags = cat.tags.to_dict()
    titles = cat.title.to_dict()

    def count(frame, attr):
        c = Counter()
        for i in frame.item_id:
            vals = attr.get(i)
            if vals is not None:
                c.update(set(vals[:5]) if attr is tags else set(vals))
        return c

    all_g, all_t, all_i = count(ev, genres), count(ev, tags), Counter(ev.item_id)
    n_all = max(len(ev), 1)
    out = {}
    for cid, frame in ev.groupby("cluster"):
        n = len(frame)
        g = lift_table(count(frame, genres), all_g, n, n_all, min_support=max(3, n // 50), top=top)
        t = lift_table(count(frame, tags), all_t, n, n_all, min_support=max(2, n // 200), top=top)
        it = lift_table(Counter(frame.item_id), all_i, n, n_all, min_support=max(2, n // 200), top=top)
        words = [x[0] for x in g[:2]] + [x[0] for x in t[:2] if x[0] not in {w.lower() for w in (y[0] for y in g[:2])}]
        out[int(cid)] = {
            "description": ", ".join(words) if words else "mixed interests",
            "top_genres": [{"genre": x, "lift": round(lift, 2), "events": c} for x, lift, c in g],
            "top_tags": [{"tag": x, "lift": round(lift, 2), "events": c} for x, lift, c in t],
            "top_items": [{"item_id": int(x), "title": titles.get(x, str(x)), "lift": round(lift, 2), "events": c} for x, lift, c in it],
            "users": int(frame.user_id.nunique()),
        }
    return out
