"""Metrics against hand computations, the protocol's filter and ranks, and the closed-form baselines."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp

from interestrec.evaluate import metrics
from interestrec.evaluate.base import Interactions, Recommender
from interestrec.evaluate.models.ease import EASE
from interestrec.evaluate.models.itemknn import ItemKNN
from interestrec.evaluate.models.mostpop import MostPop
from interestrec.evaluate.protocol import evaluate_model, rank_targets
from interestrec.recommend.closed_form import ease_weights, ease_weights_direct


def test_rank_metrics_by_hand():
    rank = np.array([0, 1, 4, 12])
    assert metrics.hit_rate(rank, 1) == 0.25
    assert metrics.hit_rate(rank, 5) == 0.75
    assert metrics.ndcg(rank, 5) == pytest.approx((1 + 1 / math.log2(3) + 1 / math.log2(6) + 0) / 4)
    assert metrics.mrr(rank) == pytest.approx((1 + 1 / 2 + 1 / 5 + 1 / 13) / 4)
    assert metrics.recall(rank, 20) == 1.0
    assert metrics.ndcg(np.array([], dtype=int), 10) == 0.0


def test_list_metrics_by_hand():
    topk = np.array([[0, 1], [1, 2], [1, -1]])
    assert metrics.coverage(topk, 10) == 0.3
    pop = np.array([4, 2, 1, 0])
    expected = np.mean([-math.log2(4 / 4), -math.log2(2 / 4), -math.log2(2 / 4), -math.log2(1 / 4), -math.log2(2 / 4)])
    assert metrics.novelty(topk, pop, 4) == pytest.approx(expected)
    feats = np.array([[1, 0], [0, 1], [1, 1], [1, 0]], dtype=float)
    # lists {0,1}: 1-cos = 1; {1,2}: 1 - 1/sqrt2
    assert metrics.intra_list_diversity(topk[:2], feats) == pytest.approx((1 + (1 - 1 / math.sqrt(2))) / 2)


def tiny(train_rows: list[list[int]], target: list[int], n_items: int) -> Interactions:
    rows = [(u, i) for u, items in enumerate(train_rows) for i in items]
    u, i = np.array([r[0] for r in rows]), np.array([r[1] for r in rows])
    x = sp.csr_matrix((np.ones(len(rows), np.float32), (u, i)), shape=(len(train_rows), n_items))
    return Interactions(user_ids=np.arange(len(train_rows)), item_ids=np.arange(n_items), train=x, seq_user=u,
                        seq_item=i, seq_time=np.arange(len(rows)), target=np.array(target))


class Fixed(Recommender):
    name = "fixed"

    def __init__(self, scores):
        super().__init__()
        self.scores = np.asarray(scores, np.float32)

    def fit(self, data):
        return self

    def score(self, users):
        return self.scores[users]


def test_ties_broken_by_item_index_and_k_larger_than_catalogue():
    data = tiny([[], []], [2, 0], n_items=3)
    r = rank_targets(Fixed([[1, 1, 1], [1, 1, 1]]), data, k_max=20)
    assert list(r.rank) == [2, 0]
    assert r.topk.shape == (2, 3) and list(r.topk[0]) == [0, 1, 2]
    m = evaluate_model(Fixed([[1, 1, 1], [1, 1, 1]]), data, ks=(1, 20))
    assert m["hr@1"] == 0.5 and m["hr@20"] == 1.0


def test_user_without_target_is_skipped_and_counted():
    data = tiny([[0], [1], [2]], [1, -1, 0], n_items=3)
    m = evaluate_model(MostPop().fit(data), data, ks=(10,))
    assert m["users"] == 2 and m["users_without_target"] == 1


def test_seen_items_never_reach_the_top_k():
    rng = np.random.default_rng(0)
    hist = [list(rng.choice(30, 12, replace=False)) for _ in range(40)]
    data = tiny(hist, [int(rng.integers(30)) for _ in range(40)], n_items=30)
    scores = np.zeros((40, 30), np.float32)
    for u, items in enumerate(hist):
        scores[u, items] = 100.0  # the model loves exactly the history items
    r = rank_targets(Fixed(scores), data, k_max=10)
    for row, u in zip(r.topk, r.users):
        assert not set(row[row >= 0]) & set(hist[u])


def test_mostpop_exact():
    data = tiny([[0, 1], [1, 2], [1], [3]], [2, 0, 3, 1], n_items=4)
    m = MostPop().fit(data)
    assert list(m.score(np.array([0]))[0]) == [1, 3, 1, 1]


def test_itemknn_exact_cosine():
    data = tiny([[0, 1], [0, 1], [0, 2]], [-1, -1, -1], n_items=3)
    m = ItemKNN(k=2).fit(data)
    # cos(0,1) = 2/sqrt(3*2), cos(0,2) = 1/sqrt(3*1), cos(1,2) = 0
    s = m.sim.toarray()
    assert s[0, 1] == pytest.approx(2 / math.sqrt(6), rel=1e-6) and s[0, 2] == pytest.approx(1 / math.sqrt(3), rel=1e-6)
    assert s[1, 2] == 0 and np.all(np.diag(s) == 0)
    assert m.score(np.array([2]))[0] == pytest.approx([1 / math.sqrt(3), 2 / math.sqrt(6), 1 / math.sqrt(3)], rel=1e-6)


def test_ease_matches_its_closed_form():
    rng = np.random.default_rng(1)
    x = (rng.random((30, 8)) < 0.3).astype(np.float64)
    lam = 5.0
    p = np.linalg.inv(x.T @ x + lam * np.eye(8))
    b = np.eye(8) - p / np.diag(p)[None, :]
    np.testing.assert_allclose(ease_weights(sp.csr_matrix(x), lam), b, atol=1e-5)
    # more items than users: the Woodbury path, against the closed form and the direct solve
    xw = (rng.random((6, 20)) < 0.4).astype(np.float64)
    pw = np.linalg.inv(xw.T @ xw + lam * np.eye(20))
    bw = np.eye(20) - pw / np.diag(pw)[None, :]
    np.testing.assert_allclose(ease_weights(sp.csr_matrix(xw), lam), bw, atol=1e-5)
    np.testing.assert_allclose(ease_weights(sp.csr_matrix(xw), lam), ease_weights_direct(sp.csr_matrix(xw), lam), atol=1e-5)
    assert np.allclose(np.diag(ease_weights(sp.csr_matrix(x), lam)), 0)
    data = tiny([list(np.flatnonzero(r)) for r in x], [-1] * 30, n_items=8)
    m = EASE(lam=lam).fit(data)
    np.testing.assert_allclose(m.score(np.arange(30)), x @ b * (x.sum(0) > 0), atol=1e-4)
