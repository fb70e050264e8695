"""A user's interests and the users like them, as the service answers them (no Ray).

Both take the :class:`~interestrec.recommend.service.RecommenderService` they describe (typed ``Any``: that module
imports this one) and a user's
fresh :class:`~interestrec.recommend.state.UserState` (or ``None``). Neither shows a history the caller
may not see when asked not to: ``hide_history`` picks each interest's nearest item among the items the
user has *not* interacted with, and ``min_users`` lists only items that several similar users share.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from interestrec.recommend.state import UserState, catalogue_items


def interests(svc: Any, user_id: int, state: UserState | None = None,
              hide_history: bool = False) -> dict:
    """A user's interests (each with its nearest item), cluster and history size.

    ``hide_history``: each interest's nearest item is the nearest one the user has *not* interacted with
    (an interest is a mean of history items, so its nearest item overall is often one of them); ``None``
    when the user has interacted with every item.
    """
    u = svc.user_index(user_id)
    model = svc.model
    its = state.interests if state is not None else model.user_interests[u]
    cluster = state.cluster if state is not None else int(model.user_cluster[u])
    sims = its @ model.item_vecs.T if len(its) else np.zeros((0, len(svc.item_ids)), np.float32)
    if hide_history:
        touched = catalogue_items(state.history) if state is not None else []  # live items: not among these
        fresh = svc.item_indices(touched) if touched else np.zeros(0, np.int64)
        sims[:, np.r_[model.history[u], fresh].astype(np.int64)] = -np.inf
    near = [int(j) if np.isfinite(row[j]) else None for row, j in zip(sims, np.argmax(sims, axis=1))]
    return {"user_id": user_id, "cluster": int(cluster),
            "interests": [{"interest": m, "nearest_item": None if j is None else svc._item(j)}
                          for m, j in enumerate(near)],
            "history_size": int(len(model.history[u])) + (len(state.history) if state is not None else 0),
            "fresh_events": state.events if state is not None else 0}


def similar(svc: Any, user_id: int, n: int = 10, k: int = 10, state: UserState | None = None,
            min_users: int = 1) -> dict:
    """The ``n`` users closest in interest space within the user's cluster, and up to ``k`` items they
    interacted with that this user has not (ranked by how many of them did, then by similarity), each one
    that at least ``min_users`` of them did (above 1, no single other user's history shows)."""
    u = svc.user_index(user_id)
    model = svc.model
    cluster = state.cluster if state is not None else int(model.user_cluster[u])
    its = state.interests if state is not None else model.user_interests[u]
    peers = np.flatnonzero((model.user_cluster == cluster) & (np.arange(len(svc.user_ids)) != u))
    if len(peers) == 0 or len(its) == 0:
        return {"user_id": user_id, "cluster": int(cluster), "users": [], "items": []}
    sims = np.array([float((its @ model.user_interests[p].T).max()) if len(model.user_interests[p]) else -1.0
                     for p in peers])
    top = peers[np.argsort(-sims, kind="stable")[:n]]
    top_sims = np.sort(sims)[::-1][:n]
    seen = set(model.history[u].tolist()) | set(svc.item_indices(catalogue_items(state.history)).tolist() if state else [])
    votes: dict[int, int] = {}
    tie: dict[int, float] = {}
    for p, sim in zip(top, top_sims):
        for i in set(model.history[p].tolist()) - seen:
            votes[i] = votes.get(i, 0) + 1
            tie[i] = tie.get(i, 0.0) + float(sim)
    best = sorted((i for i in votes if votes[i] >= min_users), key=lambda i: (-(votes[i] + 1e-3 * tie[i]), i))[:k]
    return {"user_id": user_id, "cluster": int(cluster),
            "users": [{"user_id": int(svc.user_ids[p]), "similarity": round(float(s), 4)} for p, s in zip(top, top_sims)],
            "items": [{**svc._item(i), "users": votes[i]} for i in best]}
