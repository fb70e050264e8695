"""Item popularity for the fused model's ``pop`` term: per cluster (serving) and per user as of their own
last event (evaluation, causal). Pure numpy."""

from __future__ import annotations

import numpy as np

from interestrec.encode.config import HALF_LIFE_DAYS


def cluster_popularity(users: np.ndarray, items: np.ndarray, times: np.ndarray, user_cluster: np.ndarray, k: int,
                       n_items: int, half_life_days: float = HALF_LIFE_DAYS) -> np.ndarray:
    """Recency-decayed item popularity per cluster plus a global last row, each row scaled to max 1.

    The decay is relative to the newest event: weight ``0.5 ** ((t_max - t) / half_life)``.

    Shapes:
        users/items/times: ``(m,)`` index space; user_cluster: ``(n_users,)``; returns ``(k + 1, n_items)`` float32.
    """
    now = times.max() if len(times) else 0
    w = np.power(0.5, (now - times) / (half_life_days * 86400.0))
    pop = np.zeros((k + 1, n_items), np.float64)
    cl = user_cluster[users] if len(users) else np.zeros(0, np.int64)
    ok = (cl >= 0) & (cl < k)
    np.add.at(pop, (cl[ok], items[ok]), w[ok])
    np.add.at(pop[k], items, w)
    return (pop / np.maximum(pop.max(1, keepdims=True), 1e-12)).astype(np.float32)


def user_time_popularity(n_users: int, seq_user: np.ndarray, seq_item: np.ndarray, seq_time: np.ndarray,
                         user_cluster: np.ndarray, k: int, n_items: int, half_life_days: float = 90.0) -> np.ndarray:
    """Each user's cluster popularity as of their own last event (causal: only events up to then count).

    ``pop_u(i) = Σ_{events e of i by users of cluster(u), t_e ≤ now_u} 0.5 ** ((now_u - t_e) / half_life)``,
    scaled to max 1 per user; unassigned users get the global row. One sweep over users in time order.

    Shapes:
        seq_*: ``(m,)`` index space; user_cluster: ``(n_users,)``; returns ``(n_users, n_items)`` float32.
    """
    now = np.full(n_users, -np.inf)
    np.maximum.at(now, seq_user, seq_time.astype(np.float64))
    eo = np.argsort(seq_time, kind="stable")
    es, ei, et = seq_user[eo], seq_item[eo], seq_time[eo].astype(np.float64)
    ec = user_cluster[es] if len(es) else np.zeros(0, np.int64)
    pop = np.zeros((k + 1, n_items))
    out = np.zeros((n_users, n_items), np.float32)
    h = half_life_days * 86400.0
    t_prev, j = (et[0] if len(et) else 0.0), 0
    for u in np.argsort(now, kind="stable"):
        if not np.isfinite(now[u]):
            continue
        t = now[u]
        pop *= 0.5 ** ((t - t_prev) / h)
        t_prev = t
        j2 = int(np.searchsorted(et, t, side="right"))
        if j2 > j:
            w, c, it = 0.5 ** ((t - et[j:j2]) / h), ec[j:j2], ei[j:j2]
            ok = (c >= 0) & (c < k)
            np.add.at(pop, (c[ok], it[ok]), w[ok])
            np.add.at(pop[k], it, w)
            j = j2
        c = int(user_cluster[u])
        row = pop[c if 0 <= c < k else k]
        out[u] = row / max(row.max(), 1e-12)
    return out
