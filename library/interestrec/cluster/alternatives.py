"""Comparison clusterings on a sample (scikit-learn): Ward hierarchical, DBSCAN, Gaussian mixture."""

from __future__ import annotations

import numpy as np

METHODS = ("ward", "dbscan", "gmm")


def dbscan_eps(x: np.ndarray, min_samples: int, quantile: float = 0.95) -> float:
    """A data-driven DBSCAN radius: the ``quantile`` of every row's distance to its ``min_samples``-th neighbour.

    Shapes:
        x: ``(n, d)``.
    """
    from sklearn.neighbors import NearestNeighbors

    nn = NearestNeighbors(n_neighbors=min(min_samples + 1, x.shape[0])).fit(x)
    dist, _ = nn.kneighbors(x)
    return float(np.quantile(dist[:, -1], quantile)) or 1e-6


def fit_alternative(x: np.ndarray, method: str, k: int, seed: int = 0, min_samples: int = 5) -> np.ndarray:
    """Labels of ``method`` on ``x`` (``k`` clusters for Ward/GMM; DBSCAN picks its own, noise = -1).

    Shapes:
        x: ``(n, d)`` → ``(n,)`` int32.
    """
    if method == "ward":
        from sklearn.cluster import AgglomerativeClustering

        labels = AgglomerativeClustering(n_clusters=k, linkage="ward").fit_predict(x)
    elif method == "dbscan":
        from sklearn.cluster import DBSCAN

        labels = DBSCAN(eps=dbscan_eps(x, min_samples), min_samples=min_samples).fit_predict(x)
    elif method == "gmm":
        from sklearn.mixture import GaussianMixture

        labels = GaussianMixture(k, covariance_type="diag", random_state=seed, reg_covar=1e-5).fit_predict(x)
    else:
        raise ValueError(f"unknown clustering method '{method}'; expected one of {METHODS}")
    return np.asarray(labels, dtype=np.int32)


def compare(
    x: np.ndarray,
    methods: tuple[str, ...] | list[str],
    k: int,
    reference_labels: np.ndarray,
    metric: str = "euclidean",
    seed: int = 0,
    sample: int = 2000,
) -> dict:
    """Fit each method on a seeded sample and score it (silhouette, DB, CH, ARI/NMI vs ``reference_labels``).

    Shapes:
        x: ``(n, d)``; reference_labels: ``(n,)``.
    """
    from interestrec.cluster.assign import normalize_rows
    from interestrec.cluster.metrics import cluster_metrics

    if x.shape[0] > sample:
        idx = np.sort(np.random.default_rng([seed, 11]).choice(x.shape[0], sample, replace=False))
        x, reference_labels = x[idx], np.asarray(reference_labels)[idx]
    xs = normalize_rows(x) if metric == "spherical" else np.asarray(x, dtype=np.float32)
    out = {}
    for m in methods:
        labels = fit_alternative(xs, m, k, seed)
        out[m] = cluster_metrics(xs, labels, metric=metric, silhouette_sample=sample, seed=seed, truth=reference_labels)
        out[m]["noise"] = int((labels < 0).sum())
    return out
