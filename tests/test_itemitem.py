"""The fused recommender's sequential item–item term (pure numpy/scipy, no Ray)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from interestrec.recommend.closed_form import ease_weights
from interestrec.recommend.itemitem import (
    fit_item_item,
    item_item_reference,
    item_item_scores,
    read_table,
    recency_weights,
    table_from_events,
    write_table,
)


def _matrix(seed: int = 0, users: int = 40, items: int = 25) -> sp.csr_matrix:
    rng = np.random.default_rng(seed)
    x = (rng.random((users, items)) < 0.25).astype(np.float32)
    x[:, 7] = 0  # an item nobody touched
    return sp.csr_matrix(x)


def test_unpruned_table_is_ease_and_pruning_keeps_the_largest_weights():
    x = _matrix()
    active = np.flatnonzero(np.asarray(x.sum(0)).ravel() > 0)
    b = ease_weights(x[:, active], 10.0)
    full = fit_item_item(x, lam=10.0, neighbours=1000).toarray()
    np.testing.assert_allclose(full[np.ix_(active, active)], b, atol=1e-6)
    assert not full[7].any() and not full[:, 7].any()
    pruned = fit_item_item(x, lam=10.0, neighbours=3)
    assert (np.diff(pruned.indptr)[active] <= 3).all()
    dense = pruned.toarray()
    for r, i in enumerate(active):
        kept = np.abs(dense[i][active])
        # every kept weight is at least as large (in magnitude) as every dropped one
        dropped = np.abs(b[r])[kept == 0]
        assert kept[kept > 0].min() >= dropped.max() - 1e-7


def test_max_items_keeps_only_the_most_popular():
    x = _matrix(1)
    counts = np.asarray(x.sum(0)).ravel()
    t = fit_item_item(x, lam=10.0, neighbours=100, max_items=5).toarray()
    touched = np.flatnonzero(t.any(0) | t.any(1))
    assert len(touched) <= 5
    assert set(touched) <= set(np.argsort(-counts, kind="stable")[:5])


def test_scores_match_the_reference_and_weigh_recent_items_more():
    table = fit_item_item(_matrix(2), lam=5.0, neighbours=6)
    histories = [np.array([3, 9, 3, 12]), np.array([0]), np.array([], np.int64), np.array([12, 9, 3])]
    for h in (0.0, 1.0, 3.0):
        s = item_item_scores(table, histories, h)
        assert s.shape == (4, 25)
        for b, hist in enumerate(histories):
            for j in (0, 5, 9, 20):
                assert s[b, j] == pytest.approx(item_item_reference(table, hist, h, j), abs=1e-5)
    assert not item_item_scores(table, histories, 2.0)[2].any()  # empty history → zeros
    np.testing.assert_allclose(recency_weights(3, 1.0), [0.25, 0.5, 1.0])
    # the same items in another order give other scores once recency counts
    a, b = item_item_scores(table, [np.array([3, 9, 12]), np.array([12, 9, 3])], 1.0)
    assert not np.allclose(a, b)
    a0, b0 = item_item_scores(table, [np.array([3, 9, 12]), np.array([12, 9, 3])], 0.0)
    np.testing.assert_allclose(a0, b0, atol=1e-6)


def test_positions_beyond_float32_resolution_are_left_out_within_their_bound():
    from interestrec.recommend.itemitem import effective_length

    table = fit_item_item(_matrix(3), lam=5.0, neighbours=25)
    rng = np.random.default_rng(4)
    long = rng.integers(0, 25, 400)
    for h in (0.5, 1.0, 3.0):
        kept = effective_length(len(long), h)
        assert kept == min(400, int(np.ceil(24 * h))) and 0.5 ** (kept / h) <= 2.0 ** -24
        s = item_item_scores(table, [long], h)[0]
        ref = np.array([item_item_reference(table, long, h, j) for j in range(25)])
        bound = 2.0 ** -24 / (1 - 2 ** (-1 / h)) * np.abs(table.toarray()).max()
        assert np.abs(s - ref).max() <= bound + 1e-6 * np.abs(ref).max()
        # the dropped positions are what made the difference: the kept ones alone give the same scores
        np.testing.assert_allclose(s, item_item_scores(table, [long[-kept:]], h)[0], rtol=0, atol=0)
    np.testing.assert_array_equal(item_item_scores(table.tocsc(), [long], 3.0), item_item_scores(table, [long], 3.0))
    assert effective_length(400, 0.0) == 400  # every position weighs 1: all are read
    np.testing.assert_allclose(item_item_scores(table, [long], 0.0)[0],
                               [item_item_reference(table, long, 0.0, j) for j in range(25)], rtol=1e-5)


def test_table_round_trips_through_parquet(tmp_path):
    user, item = np.array([0, 0, 1, 1, 2, 2, 2, 0]), np.array([0, 1, 1, 2, 0, 2, 3, 0])  # (0, 0) repeated
    table = table_from_events(user, item, 3, 5, lam=1.0, neighbours=2)
    assert table.shape == (5, 5) and not table[4].nnz
    ids = np.array([10, 20, 30, 40, 50])
    write_table(str(tmp_path / "t.parquet"), table, ids)
    np.testing.assert_allclose(read_table(str(tmp_path / "t.parquet"), ids).toarray(), table.toarray())
    # read into a smaller catalogue: rows naming unknown items are dropped, the rest realigned
    sub = read_table(str(tmp_path / "t.parquet"), np.array([20, 30]))
    np.testing.assert_allclose(sub.toarray(), table.toarray()[1:3, 1:3])
