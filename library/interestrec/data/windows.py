"""Time windows over the event timeline: fixed-length or equal-count, half-open ``[start, end)``."""

from __future__ import annotations

import numpy as np


def window_edges(timestamp: np.ndarray, mode: str = "equal_count", n_windows: int = 8, window_days: float = 365) -> np.ndarray:
    """Window boundaries covering every timestamp: ``edges[w] <= t < edges[w + 1]`` for window ``w``.

    ``equal_count``: ``n_windows`` windows holding (about) equal numbers of events (quantile edges;
    ties can make a window empty, so repeated edges are dropped). ``fixed``: windows of ``window_days``
    starting at the first event.

    Shapes:
        timestamp: ``(n,)``; returns ``(n_windows + 1,)`` int64.
    """
    ts = np.asarray(timestamp, dtype=np.int64)
    if ts.size == 0:
        return np.zeros(1, dtype=np.int64)
    lo, hi = int(ts.min()), int(ts.max()) + 1
    if mode == "equal_count":
        if n_windows < 1:
            raise ValueError("n_windows must be >= 1")
        inner = np.quantile(ts, np.arange(1, n_windows) / n_windows, method="lower").astype(np.int64) + 1
        edges = np.unique(np.r_[lo, inner, hi])
    elif mode == "fixed":
        step = int(window_days * 86400)
        if step <= 0:
            raise ValueError("window_days must be > 0")
        edges = np.arange(lo, hi + step, step, dtype=np.int64)
        edges = edges[: np.searchsorted(edges, hi) + 1]
    else:
        raise ValueError(f"unknown window mode '{mode}' (equal_count or fixed)")
    return edges.astype(np.int64)


def assign_windows(timestamp: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Window index of each timestamp for the given edges.

    Shapes:
        timestamp: ``(n,)``; edges: ``(w + 1,)``; returns ``(n,)`` int32 in ``[0, w)``.
    """
    return (np.searchsorted(edges, np.asarray(timestamp), side="right") - 1).astype(np.int32)
