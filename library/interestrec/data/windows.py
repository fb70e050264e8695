"""Time windows over the event timeline: fixed-length or equal-count, half-open ``[start, end)``."""

from __future__ import annotations

from collections.abc import Callable

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


def quantile_ranks(n: int, n_windows: int) -> np.ndarray:
    """0-based ranks of the inner equal-count edges among ``n`` sorted timestamps (numpy's ``lower`` quantiles).

    Shapes:
        returns ``(n_windows - 1,)`` int64.
    """
    q = np.arange(1, n_windows) / n_windows
    return np.floor((n - 1) * q).astype(np.int64)


def select_ranks(count_le: Callable[[np.ndarray], np.ndarray], ranks: np.ndarray, lo: int, hi: int,
                 fanout: int = 64) -> np.ndarray:
    """The ``rank``-th smallest value (0-based) of a distributed integer multiset, for each rank.

    ``count_le(v)`` returns, per value, how many elements are ``<= v``; ``lo``/``hi`` are the smallest and
    largest element. A ``fanout``-ary search: each round asks ``count_le`` once for ``fanout - 1`` probes per
    rank, so about ``log(hi - lo) / log(fanout)`` rounds (6 for a 31-bit range at 64).

    Shapes:
        ranks: ``(r,)``; returns ``(r,)`` int64.
    """
    ranks = np.asarray(ranks, np.int64)
    below = np.full(len(ranks), lo - 1, np.int64)  # count_le(below) <= rank
    above = np.full(len(ranks), hi, np.int64)  # count_le(above) > rank
    steps = np.arange(1, fanout, dtype=np.int64)
    while len(ranks) and (above - below > 1).any():
        width = above - below
        probes = below[:, None] + np.maximum(1, (width[:, None] * steps[None, :]) // fanout)
        probes = np.minimum(probes, above[:, None])
        more = count_le(probes.ravel()).reshape(probes.shape) > ranks[:, None]
        first = np.where(more.any(axis=1), more.argmax(axis=1), fanout - 1)  # first probe past the rank
        has = first < fanout - 1
        k = np.arange(len(ranks))
        new_above = np.where(has, probes[k, np.minimum(first, fanout - 2)], above)
        new_below = np.where(first > 0, probes[k, np.maximum(first - 1, 0)], below)
        above, below = new_above, new_below
    return above


def window_edges_from(count_le: Callable[[np.ndarray], np.ndarray], n: int, lo: int, hi: int, mode: str = "equal_count",
                      n_windows: int = 8, window_days: float = 365) -> np.ndarray:
    """:func:`window_edges` of timestamps that are not in one place: their count ``n``, minimum ``lo``, maximum
    ``hi`` and a ``count_le`` callback (see :func:`select_ranks`). Equal to :func:`window_edges` on the same values.

    Shapes:
        returns ``(w + 1,)`` int64.
    """
    if n == 0:
        return np.zeros(1, dtype=np.int64)
    if mode != "equal_count":
        return window_edges(np.array([lo, hi], np.int64), mode, n_windows, window_days)
    if n_windows < 1:
        raise ValueError("n_windows must be >= 1")
    inner = select_ranks(count_le, quantile_ranks(n, n_windows), lo, hi) + 1
    return np.unique(np.r_[lo, inner, hi + 1]).astype(np.int64)
