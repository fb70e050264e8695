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
    from interestrec.encode.interest_batch import batch_interests
    from interestrec.encode.pooling import decay

    order = np.lexsort((seq_item, seq_time, seq_user))
    su, si, st = seq_user[order], seq_item[order], seq_time[order]
    bounds = np.searchsorted(su, np.arange(n_users + 1))
    history = [si[bounds[u]:bounds[u + 1]] for u in range(n_users)]
    todo = np.ones(n_users, bool) if given is None else np.array([g is None for g in given], bool)
    sel = todo[su]
    last = np.full(n_users, np.iinfo(np.int64).min, np.int64)
    np.maximum.at(last, su, st)
    w = decay(st[sel], last[su[sel]], half_life_days)
    batch = batch_interests(su[sel], st[sel], si[sel], item_ids, item_vecs, w, n_users, max_interests)
    empty = np.zeros((0, item_vecs.shape[1]), np.float32)
    interests = [given[u] if not todo[u] else
                 (batch.vectors[batch.offsets[u]:batch.offsets[u + 1]] if batch.offsets[u + 1] > batch.offsets[u]
                  else empty) for u in range(n_users)]
    return interests, history
