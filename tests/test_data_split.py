"""Pure split/window functions on hand-made cases."""

from __future__ import annotations

import numpy as np
import pytest

from interestrec.data import assign_windows, cutoff_split, leave_last_out, window_edges


def test_leave_last_out_by_user_and_time_with_ties_broken_by_item():
    user = np.array([1, 1, 1, 1, 2, 2, 3, 3, 3])
    ts = np.array([10, 20, 30, 30, 5, 6, 1, 2, 3])
    item = np.array([7, 8, 9, 4, 1, 2, 3, 4, 5])
    event = np.array(["rate"] * 9, dtype=object)
    split, short = leave_last_out(user, ts, item, event)
    # user 1: order (10,7) (20,8) (30,4) (30,9) → test = item 9, valid = item 4
    assert split[2] == "test" and split[3] == "valid" and split[0] == split[1] == "train"
    assert list(split[4:6]) == ["train", "train"] and short == 1
    assert list(split[6:]) == ["train", "valid", "test"]


def test_tags_follow_their_time_range():
    user = np.array([1, 1, 1, 1, 1, 1])
    ts = np.array([1, 2, 3, 1, 2, 9])
    item = np.array([1, 2, 3, 1, 2, 3])
    event = np.array(["rate", "rate", "rate", "tag", "tag", "tag"], dtype=object)
    split, _ = leave_last_out(user, ts, item, event)
    assert list(split) == ["train", "valid", "test", "train", "valid", "test"]


def test_cutoff_split():
    assert list(cutoff_split(np.array([1, 5, 10]), 5)) == ["train", "test", "test"]


@pytest.mark.parametrize("mode", ["equal_count", "fixed"])
def test_windows_partition_the_timeline(mode):
    rng = np.random.default_rng(0)
    ts = rng.integers(0, 10 * 86400 * 365, 10_000)
    edges = window_edges(ts, mode, n_windows=5, window_days=365)
    w = assign_windows(ts, edges)
    assert w.min() == 0 and w.max() == len(edges) - 2
    assert ((ts >= edges[w]) & (ts < edges[w + 1])).all()
    if mode == "equal_count":
        counts = np.bincount(w)
        assert len(counts) == 5 and counts.max() - counts.min() <= 2
