"""Temporal splits: per-user leave-last-out and a global time cutoff."""

from __future__ import annotations

import numpy as np

from interestrec.data.schema import INTERACTION_KINDS
from interestrec.ids import lookup


def leave_last_out(user: np.ndarray, timestamp: np.ndarray, item: np.ndarray, event: np.ndarray) -> tuple[np.ndarray, int]:
    """Label each event ``train`` / ``valid`` / ``test`` by temporal leave-last-out per user.

    Interactions (view/click/rate/purchase) of a user are ordered by ``(timestamp, item_id)``: the last
    is ``test``, the one before ``valid``, the rest ``train``. Users with fewer than 3 interactions keep
    everything in ``train``. Other events (tag, search) take the label of the time range they fall in
    for their user: before the valid interaction → train, before the test one → valid, else test.

    Shapes:
        all inputs: ``(n,)``; returns labels ``(n,)`` (object array of str) and the count of users
        too short to split.
    """
    n = len(user)
    split = np.full(n, "train", dtype=object)
    inter = np.isin(event, INTERACTION_KINDS)
    idx = np.flatnonzero(inter)
    if len(idx) == 0:
        return split, 0
    order = idx[np.lexsort((item[idx], timestamp[idx], user[idx]))]
    u = user[order]
    starts = np.flatnonzero(np.r_[True, u[1:] != u[:-1]])
    ends = np.r_[starts[1:], len(u)]
    counts = ends - starts
    long_enough = counts >= 3
    test_pos = order[ends[long_enough] - 1]
    valid_pos = order[ends[long_enough] - 2]
    split[test_pos] = "test"
    split[valid_pos] = "valid"

    other = np.flatnonzero(~inter)
    if len(other) and long_enough.any():
        users_split = u[starts[long_enough]]  # sorted, unique
        k = lookup(users_split, user[other])
        has = k >= 0
        t = timestamp[other]
        label = np.where(t < timestamp[valid_pos][k], "train", np.where(t < timestamp[test_pos][k], "valid", "test"))
        split[other] = np.where(has, label, "train")
    return split, int((~long_enough).sum())


def cutoff_split(timestamp: np.ndarray, cutoff: int) -> np.ndarray:
    """Global time-cutoff split: events before ``cutoff`` are ``train``, the rest ``test``.

    Shapes:
        timestamp: ``(n,)``; returns ``(n,)`` labels.
    """
    return np.where(np.asarray(timestamp) < cutoff, "train", "test").astype(object)


def steps_from_end(user: np.ndarray, time: np.ndarray, item: np.ndarray) -> np.ndarray:
    """For each interaction, how many of the same user's interactions come after it (0 = the last).

    Shapes:
        user, time, item: ``(m,)``; returns ``(m,)`` int64.
    """
    order = np.lexsort((item, time, user))
    u = user[order]
    counts = np.bincount(u, minlength=int(u.max()) + 1 if len(u) else 0)
    end = np.cumsum(counts)[u]
    out = np.empty(len(u), np.int64)
    out[order] = end - 1 - np.arange(len(u))
    return out
