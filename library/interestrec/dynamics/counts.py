"""Per-cluster event counts for cluster descriptions, computed chunk by chunk (vectorised, summable).

A window's clusters are described from two counts over the events in that window's lookback:
``(cluster, item_id) → events`` and ``cluster → distinct users``. Both are computed here for one chunk
of events (e.g. one part file of ``ingest/events.parquet``) with numpy sorts, no per-event Python, and
summed over chunks with :func:`merge_counts`. :mod:`interestrec.dynamics.describe` turns the sums into
descriptions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ClusterCounts:
    """Events per ``(cluster, item)`` and distinct users per cluster, for one window.

    ``users`` sums exactly over chunks whose users are disjoint (the ingest's hash partition by user);
    a user split over two chunks would be counted once in each.

    Shapes:
        cluster, item, events: ``(m,)`` int64, sorted by ``(cluster, item)``, ``events > 0``.
        user_cluster, users: ``(c,)`` int64, sorted by cluster, ``users > 0``.
    """

    cluster: np.ndarray
    item: np.ndarray
    events: np.ndarray
    user_cluster: np.ndarray
    users: np.ndarray

    @staticmethod
    def empty() -> ClusterCounts:
        z = np.zeros(0, np.int64)
        return ClusterCounts(z, z, z, z, z)


def membership(user_ids: np.ndarray, stable: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(user_ids, stable)`` sorted by user id — the form :func:`count_events` looks users up in.

    Shapes:
        user_ids, stable: ``(n,)``, one row per user (user ids unique); both outputs ``(n,)`` int64.
    """
    order = np.argsort(user_ids, kind="stable")
    return np.asarray(user_ids, np.int64)[order], np.asarray(stable, np.int64)[order]


def group_sum(keys: tuple[np.ndarray, ...], values: np.ndarray) -> tuple[tuple[np.ndarray, ...], np.ndarray]:
    """Sum ``values`` over equal key tuples; the distinct keys come back sorted (last key fastest).

    Shapes:
        keys: each ``(m,)``; values: ``(m,)``; outputs: each ``(g,)``.
    """
    if len(values) == 0:
        return tuple(np.asarray(k, np.int64) for k in keys), np.asarray(values, np.int64)
    order = np.lexsort(keys[::-1])
    ks = [np.asarray(k)[order] for k in keys]
    change = np.zeros(len(values), bool)
    change[0] = True
    for k in ks:
        change[1:] |= k[1:] != k[:-1]
    starts = np.flatnonzero(change)
    return tuple(k[starts].astype(np.int64) for k in ks), np.add.reduceat(np.asarray(values, np.int64)[order], starts)


def count_events(ev_users: np.ndarray, ev_items: np.ndarray, users: np.ndarray, stable: np.ndarray) -> ClusterCounts:
    """Counts for one chunk of events; events of users not in ``users`` are left out.

    Args:
        ev_users / ev_items: each event's user and item. Shapes ``(e,)``.
        users / stable: the window's users **sorted by id** and their stable cluster ids
            (see :func:`membership`). Shapes ``(n,)``.
    """
    ev_users = np.asarray(ev_users, np.int64)
    if len(users) == 0 or len(ev_users) == 0:
        return ClusterCounts.empty()
    pos = np.minimum(np.searchsorted(users, ev_users), len(users) - 1)
    hit = users[pos] == ev_users
    c, it, u = stable[pos[hit]], np.asarray(ev_items, np.int64)[hit], ev_users[hit]
    (cc, ii), n = group_sum((c, it), np.ones(len(c), np.int64))
    (uc, _), _ = group_sum((c, u), np.ones(len(c), np.int64))
    (ucl,), nu = group_sum((uc,), np.ones(len(uc), np.int64))
    return ClusterCounts(cc, ii, n, ucl, nu)


def merge_counts(parts: list[ClusterCounts]) -> ClusterCounts:
    """The sum of several chunks' counts (users summed: chunks must hold disjoint users)."""
    if not parts:
        return ClusterCounts.empty()
    (c, i), n = group_sum((np.concatenate([p.cluster for p in parts]), np.concatenate([p.item for p in parts])),
                          np.concatenate([p.events for p in parts]))
    (uc,), nu = group_sum((np.concatenate([p.user_cluster for p in parts]),), np.concatenate([p.users for p in parts]))
    return ClusterCounts(c, i, n, uc, nu)


def count_windows(table, bounds: list[tuple[int, int]], members: list[tuple[np.ndarray, np.ndarray]]) -> list[ClusterCounts]:
    """Counts of one events chunk for every window: events with ``start <= timestamp < end``.

    Args:
        table: pyarrow table with ``user_id``, ``item_id``, ``timestamp``.
        bounds: per window, ``(start, end)`` of its lookback.
        members: per window, :func:`membership` of its users.
    """
    ts = table.column("timestamp").to_numpy()
    us = table.column("user_id").to_numpy()
    it = table.column("item_id").to_numpy()
    out = []
    for (start, end), (users, stable) in zip(bounds, members):
        m = (ts >= start) & (ts < end)
        out.append(count_events(us[m], it[m], users, stable))
    return out


def count_file(path: str, bounds: list[tuple[int, int]], members: list[tuple[np.ndarray, np.ndarray]]) -> list[ClusterCounts]:
    """:func:`count_windows` of one events parquet file, reading only the three columns it needs."""
    from interestrec import artifacts

    return count_windows(artifacts.read_parquet(path, columns=["user_id", "item_id", "timestamp"]), bounds, members)
