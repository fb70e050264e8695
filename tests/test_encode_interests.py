"""The batched interests (encode.interest_batch) equal the per-user reference (encode.interests) everywhere."""

import numpy as np
import pyarrow as pa
import pytest

from interestrec.encode.interest_batch import WARD, batch_interests
from interestrec.encode.interests import user_interests
from interestrec.encode.users import interest_type


def reference(uidx, ts, pos, item_ids, vecs, w, n_users, **kw):
    order = np.lexsort((ts, uidx))
    bounds = np.searchsorted(uidx[order], np.arange(n_users + 1))
    return [user_interests(item_ids[pos[s]], vecs[pos[s]], w[s], **kw)
            for s in (order[bounds[u]:bounds[u + 1]] for u in range(n_users))]


def assert_same(batch, ref):
    assert len(batch.offsets) == len(ref) + 1
    for u, its in enumerate(ref):
        s, e = batch.offsets[u], batch.offsets[u + 1]
        assert e - s == len(its), f"user {u}: {e - s} interests, reference {len(its)}"
        for j, r in enumerate(its):
            assert batch.medoid_item_id[s + j] == r.medoid_item_id, f"user {u} interest {j}: medoid"
            assert batch.size[s + j] == r.size
            assert batch.importance[s + j] == pytest.approx(r.importance, abs=1e-6)
            np.testing.assert_allclose(batch.vectors[s + j], r.vector, atol=1e-6)


def histories(seed, n_users=300, n_items=400, topics=6, dim=32):
    """Users drawing from a few topics each; lengths 0 … 260 (past max_items), repeats, timestamp ties."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(topics, dim))
    item_topic = rng.integers(0, topics, n_items)
    vecs = centres[item_topic] + 0.6 * rng.normal(size=(n_items, dim))
    vecs = (vecs / np.linalg.norm(vecs, axis=1, keepdims=True)).astype(np.float32)
    lengths = rng.choice([1, 2, 3, 5, 20, 60, 260], n_users)
    lengths[:5] = 0  # users without events in this table (absent from user_idx)
    uidx = np.repeat(np.arange(n_users), lengths)
    likes = rng.integers(0, topics, (n_users, 2))
    topic = likes[uidx, rng.integers(0, 2, len(uidx))]
    by_topic = [np.flatnonzero(item_topic == t) for t in range(topics)]
    pos = np.array([rng.choice(by_topic[t]) for t in topic])
    ts = rng.integers(0, 50, len(uidx))  # many ties
    w = rng.choice([0.0, 0.5, 1.0, 1.5], len(uidx)) * rng.random(len(uidx))
    item_ids = np.arange(n_items, dtype=np.int64) * 7 + 3
    perm = rng.permutation(len(uidx))  # any input order
    return uidx[perm], ts[perm], pos[perm], item_ids, vecs, w[perm], n_users


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("max_interests", [1, 2, 4])
def test_batch_equals_reference(seed, max_interests):
    uidx, ts, pos, item_ids, vecs, w, n = histories(seed)
    kw = {"max_interests": max_interests, "max_distance": 1.2}
    assert_same(batch_interests(uidx, ts, pos, item_ids, vecs, w, n, **kw),
                reference(uidx, ts, pos, item_ids, vecs, w, n, **kw))


def test_per_user_gram_path_equals_shared_gram(monkeypatch):
    """Catalogues above GRAM_ITEMS compute each user's Gram matrix from their own vectors: same result."""
    import interestrec.encode.interest_batch as ib

    uidx, ts, pos, item_ids, vecs, w, n = histories(3)
    shared = batch_interests(uidx, ts, pos, item_ids, vecs, w, n)
    monkeypatch.setattr(ib, "GRAM_ITEMS", 0)
    own = batch_interests(uidx, ts, pos, item_ids, vecs, w, n)
    assert_same(own, reference(uidx, ts, pos, item_ids, vecs, w, n))
    np.testing.assert_array_equal(own.medoid_item_id, shared.medoid_item_id)


def test_max_items_keeps_the_newest_and_weightless_groups_are_plain_means():
    vecs = np.eye(3, dtype=np.float32)
    # user 0: 5 events, only the newest 3 (items 1, 2, 2) count; weights all zero → importance 0, size-only
    uidx, ts, pos = np.zeros(5, int), np.arange(5), np.array([0, 0, 1, 2, 2])
    b = batch_interests(uidx, ts, pos, np.array([10, 11, 12]), vecs, np.zeros(5), 1, max_items=3, max_distance=0.5)
    assert sorted(b.medoid_item_id.tolist()) == [11, 12] and sorted(b.size.tolist()) == [1, 2]
    assert_same(b, reference(uidx, ts, pos, np.array([10, 11, 12]), vecs, np.zeros(5), 1, max_items=3,
                             max_distance=0.5))


def test_no_events_or_no_interests():
    b = batch_interests(np.zeros(0, int), np.zeros(0), np.zeros(0, int), np.array([1]), np.eye(1, 4), np.zeros(0), 3)
    assert b.offsets.tolist() == [0, 0, 0, 0] and b.vectors.shape == (0, 4)
    b = batch_interests(np.array([1]), np.array([0]), np.array([0]), np.array([1]), np.eye(1, 4), np.ones(1), 3,
                        max_interests=0)
    assert b.offsets.tolist() == [0, 0, 0, 0]


def test_ward_code_is_scipys():
    from scipy.cluster.hierarchy import _LINKAGE_METHODS

    assert _LINKAGE_METHODS["ward"] == WARD


def test_arrow_column_matches_the_reference_rows():
    uidx, ts, pos, item_ids, vecs, w, n = histories(4, n_users=40)
    b = batch_interests(uidx, ts, pos, item_ids, vecs, w, n)
    col = b.to_arrow().cast(interest_type())
    ref = [[{"vector": i.vector.tolist(), "medoid_item_id": i.medoid_item_id, "importance": i.importance,
             "size": i.size} for i in its] for its in reference(uidx, ts, pos, item_ids, vecs, w, n)]
    expected = pa.array(ref, interest_type())
    assert len(col) == n
    for got, want in zip(col.to_pylist(), expected.to_pylist()):
        assert [g["medoid_item_id"] for g in got] == [x["medoid_item_id"] for x in want]
        np.testing.assert_allclose([g["vector"] for g in got] or np.zeros((0, 32)),
                                   [x["vector"] for x in want] or np.zeros((0, 32)), atol=1e-6)


def test_history_interests_equal_the_per_user_reference():
    """The recommender's interests (recommend.interests, batched) equal user_interests user by user."""
    from interestrec.encode.pooling import decay
    from interestrec.recommend.interests import history_interests

    uidx, ts, pos, item_ids, vecs, _, n = histories(5, n_users=80)
    given = [None] * n
    given[7] = np.ones((1, vecs.shape[1]), np.float32)
    got, hist = history_interests(n, uidx, pos, ts, item_ids, vecs, half_life_days=10.0, given=given)
    order = np.lexsort((pos, ts, uidx))
    for u in range(n):
        sel = order[uidx[order] == u]
        assert hist[u].tolist() == pos[sel].tolist()
        if u == 7:
            assert got[u] is given[7]
            continue
        ref = user_interests(item_ids[pos[sel]], vecs[pos[sel]], decay(ts[sel], ts[sel].max(initial=0), 10.0))
        want = np.stack([i.vector for i in ref]) if ref else np.zeros((0, vecs.shape[1]), np.float32)
        np.testing.assert_allclose(got[u], want, atol=1e-6)
