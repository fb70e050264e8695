"""Dynamic clustering: matching labels by hand, lineage ids, drift metrics, descriptions, and the planted-drift check."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from sklearn.metrics import adjusted_rand_score

from interestrec.dynamics import track
from interestrec.dynamics.describe import describe_clusters, lift_table
from interestrec.dynamics.drift import centroid_shift, membership
from interestrec.dynamics.matching import match_clusters

E = np.eye(4, dtype=np.float32)


def match(prev_labels, curr_labels, prev_c, curr_c):
    users = np.arange(len(prev_labels))
    return match_clusters(np.arange(len(prev_c)) + 10, prev_c, users, np.array(prev_labels), curr_c, users,
                          np.array(curr_labels), next_id=100)


def test_survive_split_absorb_disappear_emerge():
    # prev 0 (10 users) stays; prev 1 (10) splits 5/5; prev 2 (10) merges into 0's successor; prev 3 (4) scatters
    prev = [0] * 10 + [1] * 10 + [2] * 10 + [3] * 4
    curr = [0] * 10 + [1] * 5 + [2] * 5 + [0] * 8 + [3, 3] + [1, 2, 3, 4]
    prev_c = E[[0, 1, 2, 3]]
    curr_c = np.stack([E[0], E[1] + 0.1 * E[2], E[1] - 0.1 * E[2], E[3] * 0 + E[2] * 0.5 + E[3] * 0.1, E[3]])
    t, next_id = match(prev, curr, prev_c, curr_c)
    assert t.prev_labels == {10: "survived", 11: "split", 12: "absorbed", 13: "disappeared"}
    assert t.ids[0] == 10  # the survivor keeps its stable id
    assert {t.curr_labels[int(i)] for i in t.ids[1:3]} == {"split"}
    assert t.parents[int(t.ids[1])] == [11]
    assert t.curr_labels[int(t.ids[4])] == "emerged" and next_id == 104
    assert 12 in t.parents[10]  # the absorbed cluster is recorded as a parent of the survivor


def test_drift_metrics_by_hand():
    m = membership(np.array([1, 2, 3, 4]), np.array([0, 0, 1, 1]), np.array([2, 3, 4, 5]), np.array([0, 1, 0, 7]))
    assert m["common_users"] == 3 and m["moved_share"] == pytest.approx(1 / 3)
    assert m["transition"] == {"from": [0, 1], "to": [0, 1], "counts": [[1, 0], [1, 1]]}
    shift = centroid_shift(np.array([0, 1]), E[[0, 1]], np.array([1, 5]), np.stack([E[1] + E[0], E[2]]), "spherical")
    assert shift == pytest.approx(1 - 1 / np.sqrt(2))


def test_lift_and_descriptions():
    from collections import Counter

    rows = lift_table(Counter({"Sci-Fi": 8, "Drama": 2}), Counter({"Sci-Fi": 10, "Drama": 40}), 10, 50, min_support=1)
    assert rows[0][0] == "Sci-Fi" and rows[0][1] == pytest.approx((8 / 10) / (10 / 50))
    items = pa.table({"item_id": [1, 2, 3], "title": ["Alien", "Heat", "Up"], "genres": [["Sci-Fi"], ["Crime"], ["Animation"]],
                      "tags": [["space"], ["heist"], ["balloons"]]})
    events = pa.table({"user_id": [1, 1, 1, 2, 2, 2, 3, 3, 3], "item_id": [1, 1, 1, 2, 2, 2, 3, 3, 2]})
    d = describe_clusters(np.array([1, 2, 3]), np.array([0, 1, 1]), events, items)
    assert d[0]["description"].startswith("Sci-Fi") and d[0]["top_items"][0]["title"] == "Alien"
    assert d[1]["top_genres"][0]["genre"] in ("Crime", "Animation")


def test_lineage_keeps_ids_when_nothing_changes():
    rng = np.random.default_rng(0)
    centres = np.linalg.qr(rng.normal(size=(16, 16)))[0][:4].astype(np.float32)
    labels = rng.integers(0, 4, 400)
    x = centres[labels] + 0.05 * rng.normal(size=(400, 16)).astype(np.float32)
    users = np.arange(400)
    dyn = track([(0, users, x), (1, users, x), (2, users, x)], k=4, metric="euclidean")
    assert all(np.array_equal(np.sort(s), np.arange(4)) for s in dyn.stable_ids)
    assert all(d["moved_share"] == 0 and d["ari"] == 1.0 for d in dyn.drift)
    assert all(set(d["labels"]["previous"].values()) == {"survived"} for d in dyn.drift)


@pytest.mark.parametrize("mode", ["warm", "streaming"])
def test_planted_drift_is_recovered(mode):
    from interestrec.data.synthetic import generate
    from interestrec.encode.pooling import window_user_vectors

    planted = 0.2
    d = generate(n_users=2000, n_items=1600, n_clusters=8, n_windows=4, events_per_user=40, drift_rate=planted, dim=32, seed=5)
    windows = pa.table({"window": pa.array(np.arange(4), pa.int32()), "start": d.window_bounds[:, 0], "end": d.window_bounds[:, 1]})
    days = (d.window_bounds[0, 1] - d.window_bounds[0, 0]) / 86400
    vec = window_user_vectors(d.events, d.items["item_id"].to_numpy(), d.item_vectors, windows, lookback_days=days,
                              half_life_days=1e6, min_events=1)
    per_window = []
    for w in range(4):
        t = vec.filter(pa.compute.equal(vec["window"], w))
        from interestrec.artifacts import arrow_to_vectors

        per_window.append((w, t["user_id"].to_numpy(), arrow_to_vectors(t["vector"])))
    dyn = track(per_window, k=8, mode=mode, decay=0.0 if mode == "streaming" else 0.5, metric="spherical", seed=0)
    truth = d.truth.to_pandas().set_index(["user_id", "window"]).cluster
    for i, (w, users, _) in enumerate(per_window):
        ari = adjusted_rand_score(truth.loc[list(zip(users, [w] * len(users)))].to_numpy(), dyn.user_stable(i))
        assert ari >= 0.9, (mode, w, ari)
    true_moved = d.truth.to_pandas().pivot(index="user_id", columns="window", values="cluster").to_numpy()
    for i, drift in enumerate(dyn.drift, start=1):
        planted_share = np.mean(true_moved[:, i] != true_moved[:, i - 1])
        assert abs(drift["moved_share"] - planted_share) <= 0.2 * planted_share, (i, drift["moved_share"], planted_share)
