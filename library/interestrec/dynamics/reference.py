"""The per-event reference for cluster descriptions (the obvious version the counted fast path is tested equal to)."""

from __future__ import annotations

from collections import Counter

import numpy as np

from interestrec.dynamics.describe import cluster_entry, lift_table


def describe_clusters_reference(user_ids: np.ndarray, stable: np.ndarray, events, items, top: int = 5) -> dict[int, dict]:
    """Top genres / tags / items by lift for each cluster, and a one-line description (per-event reference).

    Same output as :func:`interestrec.dynamics.describe.describe_clusters`, counted one event at a time.

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
        out[int(cid)] = cluster_entry(g, t, it, titles, int(frame.user_id.nunique()))
    return out
