"""The seeded synthetic generator: determinism, planted drift, activity shape, writable shards."""

from __future__ import annotations

import numpy as np

from interestrec.data.synthetic import generate, write_shards


def test_same_seed_same_data_other_seed_differs():
    a = generate(n_users=300, n_items=400, n_clusters=5, n_windows=3, seed=7)
    b = generate(n_users=300, n_items=400, n_clusters=5, n_windows=3, seed=7)
    c = generate(n_users=300, n_items=400, n_clusters=5, n_windows=3, seed=8)
    assert a.events.equals(b.events) and a.truth.equals(b.truth) and np.array_equal(a.item_vectors, b.item_vectors)
    assert not a.events.equals(c.events)


def test_planted_drift_rate_and_truth_shape():
    d = generate(n_users=20_000, n_items=1000, n_clusters=8, n_windows=4, drift_rate=0.25, seed=1)
    assert d.truth.num_rows == 20_000 * 4
    c = d.truth["cluster"].to_numpy().reshape(-1, 4)
    moved = (c[:, 1:] != c[:, :-1]).mean()
    assert abs(moved - 0.25) < 0.01
    assert c.min() == 0 and c.max() == 7


def test_events_follow_clusters_and_windows():
    d = generate(n_users=2000, n_items=800, n_clusters=4, n_windows=3, events_per_user=30, seed=2)
    ev = d.events.to_pandas()
    w = ((ev.timestamp - d.window_bounds[0, 0]) // (d.window_bounds[0, 1] - d.window_bounds[0, 0])).to_numpy()
    assert ((ev.timestamp.to_numpy() >= d.window_bounds[w, 0]) & (ev.timestamp.to_numpy() < d.window_bounds[w, 1])).all()
    per_user_window = ev.assign(w=w).groupby(["user_id", "w"]).size()
    assert len(per_user_window) == 2000 * 3  # >= 1 event per user per window
    truth = d.truth.to_pandas().set_index(["user_id", "window"]).cluster
    planted = truth.loc[list(zip(ev.user_id, w))].to_numpy()
    topic = d.item_topic[ev.item_id.to_numpy() - 1]
    assert (planted == topic).mean() > 0.8  # focus 0.85 (+ random hits)
    counts = ev.groupby("user_id").size()
    assert abs(counts.mean() - 30) < 3 and counts.max() > 4 * counts.median()  # heavy tail
    rate = ev.event == "rate"
    assert ev.value[rate].between(0.5, 5).all() and ev.value[~rate].isna().all()


def test_item_vectors_sit_near_their_topic():
    d = generate(n_users=10, n_items=600, n_clusters=6, dim=16, seed=3)
    v = d.item_vectors
    assert np.allclose(np.linalg.norm(v, axis=1), 1, atol=1e-5)
    centres = np.stack([v[d.item_topic == t].mean(0) for t in range(6)])
    nearest = np.argmax(v @ centres.T, axis=1)
    assert (nearest == d.item_topic).mean() > 0.95
    titles = d.items["title"].to_pylist()
    assert "Space Opera" in titles[0] and d.items["genres"].to_pylist()[0] == ["Sci-Fi"]


def test_write_shards(tmp_path):
    import pyarrow.parquet as pq

    d = generate(n_users=200, n_items=100, n_clusters=3, seed=4)
    paths = write_shards(d, str(tmp_path), rows_per_shard=3000)
    assert len(paths) == -(-d.events.num_rows // 3000)
    back = pq.ParquetDataset([str(p) for p in paths]).read()
    assert back.num_rows == d.events.num_rows
    assert np.array_equal(np.load(tmp_path / "item_vectors.npy", allow_pickle=False), d.item_vectors)
