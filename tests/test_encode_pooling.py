"""Pooled user vectors, event weights and per-window vectors (pure numpy, no Ray)."""

import numpy as np
import pyarrow as pa
import pytest

from interestrec.artifacts import arrow_to_vectors
from interestrec.encode.pooling import event_weights, pool_user_vectors, window_user_vectors

DAY = 86400.0


def test_pooled_vector_equals_hand_computation():
    items = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 2.0]], np.float32)
    user = np.array([0, 0, 0, 2])
    item = np.array([0, 1, 2, 1])
    now = 1000 * DAY
    ts = np.array([now, now - 10 * DAY, now - 20 * DAY, now - 5 * DAY])
    w = np.array([1.0, 2.0, 0.5, 3.0])
    vec, n = pool_user_vectors(user, item, ts, w, items, n_users=3, now=now, half_life_days=10.0)
    # user 0: 1*1*e0 + 2*0.5*e1 + 0.5*0.25*(2 e2) = (1, 1, 0.25)
    hand = np.array([1.0, 1.0, 0.25])
    np.testing.assert_allclose(vec[0], hand / np.linalg.norm(hand), atol=1e-6)
    np.testing.assert_allclose(vec[2], [0, 1, 0], atol=1e-6)
    # user 1 has no events: zero vector, count 0, never NaN
    assert np.all(vec[1] == 0) and n.tolist() == [3, 0, 1]
    assert vec.dtype == np.float32 and n.dtype == np.int32 and not np.isnan(vec).any()


def test_per_event_now_and_future_events_do_not_grow():
    items = np.eye(2, dtype=np.float32)
    vec, _ = pool_user_vectors(np.array([0, 0]), np.array([0, 1]), np.array([0.0, 30 * DAY]), np.ones(2), items, 1,
                               now=np.array([10 * DAY, 10 * DAY]), half_life_days=10.0)
    # first event half-decayed, the future one counts as "now" (weight 1)
    hand = np.array([0.5, 1.0])
    np.testing.assert_allclose(vec[0], hand / np.linalg.norm(hand), atol=1e-6)


def test_event_weights_by_kind_and_rating():
    w = event_weights(np.array(["rate", "rate", "view", "purchase", "tag", "rate"]),
                      np.array([5.0, 2.5, np.nan, np.nan, np.nan, np.nan]))
    np.testing.assert_allclose(w, [1.0, 0.5, 0.5, 1.5, 1.0, 1.0])
    with pytest.raises(ValueError, match="unknown event kind"):
        event_weights(np.array(["like"]))


def test_bad_input_named():
    items = np.eye(2, dtype=np.float32)
    with pytest.raises(ValueError, match="item_idx outside"):
        pool_user_vectors(np.array([0]), np.array([5]), np.array([0.0]), np.ones(1), items, 1, 0.0, 10.0)
    with pytest.raises(ValueError, match="weights has 2"):
        pool_user_vectors(np.array([0]), np.array([0]), np.array([0.0]), np.ones(2), items, 1, 0.0, 10.0)
    with pytest.raises(ValueError, match="half_life_days"):
        pool_user_vectors(np.array([0]), np.array([0]), np.array([0.0]), np.ones(1), items, 1, 0.0, 0.0)


def test_window_vectors_use_lookback_and_decay_to_window_end():
    items = np.eye(3, dtype=np.float32)
    events = pa.table({
        "user_id": pa.array([7, 7, 7, 9], pa.int64()),
        "item_id": pa.array([10, 11, 12, 999], pa.int64()),  # 999 is not in the catalog: skipped
        "timestamp": pa.array([0, int(90 * DAY), int(100 * DAY), int(95 * DAY)], pa.int64()),
        "event": ["rate", "view", "rate", "rate"],
        "value": pa.array([4.0, None, 5.0, 3.0], pa.float32()),
    })
    windows = pa.table({"window": pa.array([0, 1], pa.int32()), "start": pa.array([0, int(100 * DAY)], pa.int64()),
                        "end": pa.array([int(100 * DAY), int(120 * DAY)], pa.int64())})
    out = window_user_vectors(events, np.array([10, 11, 12]), items, windows, lookback_days=50, half_life_days=10)
    assert out.column_names == ["user_id", "window", "vector", "n_events"]
    rows = out.to_pydict()
    # window 0: only the view at day 90 (day 0 is outside the lookback, day 100 is at the end: excluded)
    # window 1 [70, 120): the view (30 days old) and the rating (20 days old); user 9 has no known items
    assert list(zip(rows["user_id"], rows["window"], rows["n_events"])) == [(7, 0, 1), (7, 1, 2)]
    v = arrow_to_vectors(out["vector"])
    np.testing.assert_allclose(v[0], [0, 1, 0], atol=1e-6)
    hand = np.array([0.0, 0.5 * 0.5 ** 3, 1.0 * 0.5 ** 2])
    np.testing.assert_allclose(v[1], hand / np.linalg.norm(hand), atol=1e-6)
