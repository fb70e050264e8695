"""Users' interest vectors and time-ordered histories over the events a model may learn from."""

from __future__ import annotations

import numpy as np

from interestrec.encode.config import HALF_LIFE_DAYS


def history_interests(n_users: int, seq_user: np.ndarray, seq_item: np.ndarray, seq_time: np.ndarray,
                      item_ids: np.ndarray, item_vecs: np.ndarray, half_life_days: float = HALF_LIFE_DAYS,
                      max_interests: int = 4, given: list[np.ndarray | None] | None = None
                      ) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Every user's interest vectors (``encode.interests.user_interests``) and time-ordered history.

    ``given[u]`` (e.g. the encode stage's interests), when not ``None``, is used instead of recomputing.

    Shapes:
        seq_*: ``(m,)`` index space; returns per user ``(m_u, d)`` interests and ``(h_u,)`` item indices.
    """
    from interestrec.encode.interests import user_interests
    from interestrec.encode.pooling import decay

    order = np.lexsort((seq_item, seq_time, seq_user))
    su, si, st = seq_user[order], seq_item[order], seq_time[order]
    bounds = np.searchsorted(su, np.arange(n_users + 1))
    interests, history = [], []
    empty = np.zeros((0, item_vecs.shape[1]), np.float32)
    for u in range(n_users):
        items, times = si[bounds[u]:bounds[u + 1]], st[bounds[u]:bounds[u + 1]]
        history.append(items)
        if given is not None and given[u] is not None:
            interests.append(given[u])
            continue
        if len(items) == 0:
            interests.append(empty)
            continue
        its = user_interests(item_ids[items], item_vecs[items], decay(times, times.max(), half_life_days), max_interests)
        interests.append(np.stack([i.vector for i in its]))
    return interests, history
