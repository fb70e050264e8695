"""Pooled user vectors: recency-decayed, event-weighted means of item vectors (far cheaper than text).

``vector(u) = normalise(Σ_e w(e) · 0.5^((now − t_e) / half_life) · item_vector(i_e))`` over the user's
events ``e``; users without events get a zero vector and ``n_events = 0`` — never NaN.
"""

from __future__ import annotations

import numpy as np

EVENT_WEIGHT = {"view": 0.5, "click": 0.75, "rate": 1.0, "purchase": 1.5, "tag": 1.0, "search": 0.5}


def event_weights(event: np.ndarray, value: np.ndarray | None = None) -> np.ndarray:
    """Weight of each event by kind, scaled for ratings (5 → 1.0, 0.5 → 0.1; missing rating → 1.0).

    Shapes:
        event, value: ``(n,)``; returns ``(n,)`` float64.
    """
    import pandas as pd

    ev = np.asarray(event, dtype=object)
    inv, kinds = pd.factorize(ev, use_na_sentinel=False)  # a hash pass, not a sort of n strings
    names = ["None" if pd.isna(k) else str(k) for k in kinds.tolist()]
    unknown = sorted(set(names) - set(EVENT_WEIGHT))
    if unknown:
        raise ValueError(f"event_weights: unknown event kind(s) {unknown}; known: {sorted(EVENT_WEIGHT)}")
    w = np.array([EVENT_WEIGHT[k] for k in names], dtype=np.float64)[inv]
    if value is not None:
        v = np.asarray(value, dtype=np.float64)
        rate = (ev == "rate") & ~np.isnan(v)
        w[rate] *= v[rate] / 5.0
    return w


def decay(timestamps: np.ndarray, now: float | np.ndarray, half_life_days: float) -> np.ndarray:
    """``0.5 ** ((now - t) / half_life)`` (events after ``now`` count as ``now``)."""
    age = np.maximum(np.asarray(now, dtype=np.float64) - np.asarray(timestamps, dtype=np.float64), 0.0)
    return np.power(0.5, age / (half_life_days * 86400.0))


def pool_user_vectors(user_idx: np.ndarray, item_idx: np.ndarray, timestamps: np.ndarray, weights: np.ndarray,
                      item_vectors: np.ndarray, n_users: int, now: float | np.ndarray,
                      half_life_days: float) -> tuple[np.ndarray, np.ndarray]:
    """Recency-decayed weighted mean of item vectors per user, L2-normalised.

    Args:
        now: the reference time — a scalar, or per event ``(n,)`` (e.g. each user's last event).

    Shapes:
        user_idx, item_idx, timestamps, weights: ``(n,)``; item_vectors: ``(n_items, d)``;
        returns vectors ``(n_users, d)`` float32 and n_events ``(n_users,)`` int32.
    """
    import scipy.sparse as sp

    n = len(user_idx)
    for name, a in (("item_idx", item_idx), ("timestamps", timestamps), ("weights", weights)):
        if len(a) != n:
            raise ValueError(f"pool_user_vectors: {name} has {len(a)} entries, user_idx has {n}")
    if half_life_days <= 0:
        raise ValueError(f"pool_user_vectors: half_life_days must be > 0, got {half_life_days}")
    if n and (np.min(user_idx) < 0 or np.max(user_idx) >= n_users):
        raise ValueError(f"pool_user_vectors: user_idx outside [0, {n_users})")
    if n and (np.min(item_idx) < 0 or np.max(item_idx) >= item_vectors.shape[0]):
        raise ValueError(f"pool_user_vectors: item_idx outside [0, {item_vectors.shape[0]})")
    w = np.asarray(weights, np.float64) * decay(timestamps, now, half_life_days)
    m = sp.csr_matrix((w, (user_idx, item_idx)), shape=(n_users, item_vectors.shape[0]))
    v = np.asarray(m @ item_vectors.astype(np.float64), dtype=np.float64)
    norm = np.sqrt(np.einsum("ij,ij->i", v, v))[:, None]  # no (n_users, d) temporary
    v = np.divide(v, norm, out=np.zeros_like(v), where=norm > 0)
    counts = np.bincount(np.asarray(user_idx, np.int64), minlength=n_users).astype(np.int32)
    return v.astype(np.float32), counts


def window_user_vectors(events, item_ids: np.ndarray, item_vectors: np.ndarray, windows, lookback_days: float,
                        half_life_days: float, min_events: int = 1):
    """Per-window user vectors from the events in ``[end − lookback, end)`` of each window, decayed to ``end``.

    Args:
        events: pyarrow table with ``user_id, item_id, timestamp, event, value``.
        item_ids / item_vectors: the encoded catalog (rows aligned).
        windows: pyarrow table ``window, start, end``.

    Returns:
        pyarrow table ``user_id, window, vector, n_events`` (users with < ``min_events`` left out).
    """
    import pyarrow as pa

    from interestrec.artifacts import vectors_to_arrow
    from interestrec.ids import lookup

    ev = events.select(["user_id", "item_id", "timestamp", "event", "value"]).to_pandas()
    order = np.argsort(item_ids)
    pos = lookup(item_ids[order], ev.item_id.to_numpy())
    known = pos >= 0
    ev = ev[known]
    iidx = order[pos[known]]
    users, uidx = np.unique(ev.user_id.to_numpy(), return_inverse=True)
    ts = ev.timestamp.to_numpy()
    w = event_weights(ev.event.to_numpy(), ev.value.to_numpy(dtype=np.float64, na_value=np.nan))
    out = []
    for wi, end in zip(windows["window"].to_pylist(), windows["end"].to_pylist()):
        m = (ts < end) & (ts >= end - lookback_days * 86400)
        vec, n = pool_user_vectors(uidx[m], iidx[m], ts[m], w[m], item_vectors, len(users), end, half_life_days)
        keep = n >= min_events
        out.append(pa.table({"user_id": users[keep], "window": pa.array(np.full(keep.sum(), wi), pa.int32()),
                             "vector": vectors_to_arrow(vec[keep]), "n_events": pa.array(n[keep], pa.int32())}))
    return pa.concat_tables(out)
