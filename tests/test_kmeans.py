"""Reference k-means core: exactness against scikit-learn, seeding, empty clusters, spherical, streaming,
bad input, metrics, K selection and the alternatives."""

from __future__ import annotations

import numpy as np
import pytest

from interestrec.cluster import assign, half_life_to_decay, kmeans, streaming_update


def blobs(n=6000, d=24, k=12, std=1.0, seed=0):
    """Planted Gaussian clusters: centres spread on a sphere of radius 10."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(k, d))
    centres *= 10 / np.linalg.norm(centres, axis=1, keepdims=True)
    y = rng.integers(0, k, n)
    return (centres[y] + std * rng.normal(size=(n, d))).astype(np.float32), y


def test_same_init_matches_sklearn_labels_and_inertia():
    from sklearn.cluster import KMeans

    x, _ = blobs(n=8000, d=32, k=30, std=4.0, seed=1)  # overlapping: many iterations
    c0 = x[:30].copy()
    ours = kmeans(x, 30, init_centroids=c0, max_iter=100, tol=0)
    sk = KMeans(30, init=c0, n_init=1, max_iter=100, tol=0, algorithm="lloyd").fit(x)
    assert ours.n_iter > 5
    assert np.array_equal(ours.labels, sk.labels_)
    assert abs(ours.inertia / sk.inertia_ - 1) < 1e-5
    np.testing.assert_allclose(ours.centroids, sk.cluster_centers_, atol=1e-4)
    assert ours.counts.sum() == len(x) and ours.labels.dtype == np.int32 and ours.centroids.dtype == np.float32


@pytest.mark.parametrize("init", ["k-means++", "k-means||"])
def test_recovers_planted_clusters(init):
    from sklearn.metrics import adjusted_rand_score

    x, y = blobs(std=0.4)
    r = kmeans(x, 12, init=init, seed=1)
    assert adjusted_rand_score(y, r.labels) >= 0.95
    assert r.history[0] >= r.history[-1]  # inertia never rises
    assert np.all(np.diff(r.history) <= 1e-6 * r.history[0])
    r2 = kmeans(x, 12, init=init, seed=1)
    assert np.array_equal(r.centroids, r2.centroids)  # seeded


def test_kmeans_plusplus_beats_random_init_on_average():
    x, _ = blobs(k=20, seed=5)
    from interestrec.cluster.seeding import kmeans_plusplus

    pp = [kmeans(x, 20, init_centroids=kmeans_plusplus(x, 20, s), max_iter=1).history[0] for s in range(3)]
    rnd = [kmeans(x, 20, init_centroids=x[np.random.default_rng(s).choice(len(x), 20, replace=False)],
                  max_iter=1).history[0] for s in range(3)]
    assert np.mean(pp) < np.mean(rnd)


def test_tol_stops_early_and_max_iter_caps():
    x, _ = blobs(n=4000, d=16, k=20, std=3.0)
    loose = kmeans(x, 20, tol=1e-2, seed=0)
    exact = kmeans(x, 20, tol=0, seed=0, max_iter=200)
    capped = kmeans(x, 20, tol=0, seed=0, max_iter=2)
    assert loose.n_iter < exact.n_iter and capped.n_iter == 2
    h = loose.history
    assert abs(h[-2] - h[-1]) < 1e-2 * h[-2]


def test_empty_cluster_reseeded_from_farthest_point():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, 4)).astype(np.float32)
    x[17] = [9, 9, 9, 9]  # the farthest point from the centre of mass
    c0 = np.stack([x.mean(0), np.full(4, 1000.0, np.float32)])  # second centroid attracts nothing
    r = kmeans(x, 2, init_centroids=c0, max_iter=1)
    np.testing.assert_allclose(r.centroids[1], x[17])
    np.testing.assert_allclose(r.centroids[0], x.astype(np.float64).mean(0), rtol=1e-5, atol=1e-6)
    full = kmeans(x, 2, init_centroids=c0, max_iter=20)
    assert (full.counts > 0).all()


def test_spherical_centroids_unit_length_and_cosine_distances():
    x, y = blobs(d=16, k=6, seed=2)
    x *= np.random.default_rng(0).uniform(0.5, 5, size=(len(x), 1)).astype(np.float32)  # scale must not matter
    r = kmeans(x, 6, metric="spherical", seed=0)
    np.testing.assert_allclose(np.linalg.norm(r.centroids, axis=1), 1.0, atol=1e-5)
    labels, dist = assign(x, r.centroids, "spherical")
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    cos = xn @ r.centroids.T
    np.testing.assert_array_equal(labels, cos.argmax(1))
    np.testing.assert_allclose(dist, 1 - cos.max(1), atol=1e-5)
    assert abs(r.inertia - dist.astype(np.float64).sum()) < 1e-3 * r.inertia


def test_assign_matches_brute_force_and_chunking():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(3001, 10)).astype(np.float32)
    c = rng.normal(size=(7, 10)).astype(np.float32)
    d2 = ((x[:, None, :].astype(np.float64) - c[None]) ** 2).sum(-1)
    for chunk in (1, 64, 5000):
        labels, dist = assign(x, c, chunk_size=chunk)
        np.testing.assert_array_equal(labels, d2.argmin(1))
        np.testing.assert_allclose(dist, d2.min(1), rtol=1e-4, atol=1e-4)


def test_streaming_update_equals_closed_form_decay():
    rng = np.random.default_rng(0)
    c = np.array([[0.0, 0.0], [10.0, 10.0]], np.float32)
    n = np.array([100.0, 40.0])
    x = np.concatenate([rng.normal(0.5, 0.2, (30, 2)), rng.normal(9.0, 0.2, (10, 2))]).astype(np.float32)
    a = half_life_to_decay(5.0)
    assert abs(a**5 - 0.5) < 1e-12
    new_c, new_n = streaming_update(c, n, x, decay=a)
    for j, rows in enumerate([x[:30], x[30:]]):
        m = len(rows)
        expect = (a * n[j] * c[j] + rows.astype(np.float64).sum(0)) / (a * n[j] + m)
        np.testing.assert_allclose(new_c[j], expect, rtol=1e-6)
        assert new_n[j] == pytest.approx(a * n[j] + m)
    forget, _ = streaming_update(c, n, x, decay=0.0)  # a = 0: only the new batch
    np.testing.assert_allclose(forget[0], x[:30].mean(0), rtol=1e-5)
    pts, pts_n = streaming_update(c, n, x, decay=0.99, time_unit="points")
    assert pts_n[0] == pytest.approx(100 * 0.99**40 + 30)


def test_streaming_revives_dying_cluster_and_keeps_spherical_unit():
    c = np.array([[1.0, 0.0], [0.0, 1.0]], np.float32)
    x = np.tile([[1.0, 0.1]], (50, 1)).astype(np.float32)
    new_c, new_n = streaming_update(c, np.array([10.0, 1e-12]), x, decay=0.0, metric="spherical")
    assert new_n[0] == new_n[1]  # the empty cluster took half the weight of the largest one
    np.testing.assert_allclose(np.linalg.norm(new_c, axis=1), 1.0, atol=1e-6)


@pytest.mark.parametrize(
    "x, k, kw, msg",
    [
        (np.array([[0.0, np.nan], [1, 1], [2, 2]]), 2, {}, "NaN/inf"),
        (np.array([[0.0, np.inf], [1, 1], [2, 2]]), 2, {}, "row 0"),
        (np.ones((3, 2)), 4, {}, "larger than the number of rows"),
        (np.ones((5, 2)), 2, {"init_centroids": np.ones((2, 3))}, "dimension mismatch"),
        (np.ones((5, 2)), 2, {"init_centroids": np.ones((3, 2))}, "k=2"),
        (np.ones(5), 2, {}, "2-D"),
        (np.zeros((5, 2)), 2, {"metric": "spherical"}, "zero-norm"),
        (np.ones((5, 2)), 2, {"metric": "manhattan"}, "unknown metric"),
        (np.ones((5, 2)), 0, {}, "positive integer"),
    ],
)
def test_bad_input_raises_clear_value_error(x, k, kw, msg):
    with pytest.raises(ValueError, match=msg):
        kmeans(x, k, **kw)


def test_streaming_and_assign_bad_input():
    with pytest.raises(ValueError, match="dimension mismatch"):
        assign(np.ones((3, 2)), np.ones((2, 3)))
    with pytest.raises(ValueError, match="decay"):
        streaming_update(np.ones((2, 2)), np.ones(2), np.ones((3, 2)), decay=1.5)
    with pytest.raises(ValueError, match="half_life"):
        half_life_to_decay(0)


def test_metrics_formula_and_truth_scores():
    from interestrec.cluster.metrics import cluster_metrics, mean_centroid_distance

    c = np.array([[0.0, 0.0], [3.0, 4.0], [0.0, 8.0]])
    pair = [5.0, 8.0, 5.0]  # |c0-c1|, |c0-c2|, |c1-c2|
    assert mean_centroid_distance(c) == pytest.approx(2 * sum(pair) / (3 * 2))
    x, y = blobs(n=1500, k=5, std=0.4, seed=4)
    r = kmeans(x, 5, init_centroids=np.stack([x[y == j].mean(0) for j in range(5)]))
    m = cluster_metrics(x, r.labels, r.centroids, truth=y, silhouette_sample=500)
    assert m["ari"] > 0.99 and m["nmi"] > 0.99 and m["silhouette"] > 0.5
    assert m["mean_centroid_distance"] == pytest.approx(mean_centroid_distance(r.centroids))
    shuffled = cluster_metrics(x, np.random.default_rng(0).permutation(r.labels), truth=y)
    assert shuffled["silhouette"] < 0.05 and shuffled["ari"] < 0.05 and shuffled["davies_bouldin"] > m["davies_bouldin"]


def test_select_k_finds_planted_k_and_explains():
    from interestrec.cluster.select_k import knee, select_k

    assert knee([1, 2, 3, 4, 5], [100, 20, 15, 12, 10]) == 2
    x, _ = blobs(n=3000, d=16, k=8, std=0.8, seed=6)
    sel = select_k(x, (3, 5, 8, 12, 16), sample=1500, seed=0)
    assert sel.k == 8 and "K=8" in sel.reason
    assert [g["k"] for g in sel.grid] == [3, 5, 8, 12, 16]
    assert all(a["inertia"] > b["inertia"] for a, b in zip(sel.grid, sel.grid[1:]))
    with pytest.raises(ValueError, match="no K"):
        select_k(x[:10], (20, 30))


@pytest.mark.parametrize("method", ["ward", "gmm", "dbscan"])
def test_alternatives_on_planted_clusters(method):
    from interestrec.cluster.alternatives import compare

    x, y = blobs(n=1200, d=8, k=5, std=0.5, seed=8)
    out = compare(x, [method], 5, y, sample=800)
    assert out[method]["ari"] > 0.9, out
    assert out[method]["n"] == 800
