"""Cluster quality metrics (scikit-learn where it has them).

Mean between-centroid distance, exactly as computed here:

    D = 1/(k·(k−1)) · Σ_{i≠j} ‖μ_i − μ_j‖₂  =  (1/k) Σ_i [ 1/(k−1) Σ_{j≠i} ‖μ_i − μ_j‖₂ ]

i.e. each centroid's mean euclidean distance to the other k−1 centroids (the seeds' ``1/(k−1)·Σ``),
averaged over the centroids. For spherical k-means the centroids are unit vectors, so
``‖μ_i − μ_j‖ = sqrt(2 − 2 cos)``.
"""

from __future__ import annotations

import numpy as np


def mean_centroid_distance(centroids: np.ndarray) -> float:
    """``D`` as in the module docstring (0 for a single centroid).

    Shapes:
        centroids: ``(k, d)``.
    """
    c = np.asarray(centroids, dtype=np.float64)
    k = c.shape[0]
    if k < 2:
        return 0.0
    sq = (c**2).sum(1)
    d = np.sqrt(np.maximum(sq[:, None] + sq[None, :] - 2 * c @ c.T, 0.0))
    np.fill_diagonal(d, 0.0)
    return float(d.sum() / (k * (k - 1)))


def inertia(x: np.ndarray, centroids: np.ndarray, metric: str = "euclidean") -> float:
    """Sum of each row's distance to its nearest centroid (squared euclidean, or ``1 − cos``).

    Shapes:
        x: ``(n, d)``; centroids: ``(k, d)``.
    """
    from interestrec.cluster.assign import assign

    _, dist = assign(x, centroids, metric)
    return float(dist.astype(np.float64).sum())


def cluster_metrics(
    x: np.ndarray,
    labels: np.ndarray,
    centroids: np.ndarray | None = None,
    metric: str = "euclidean",
    silhouette_sample: int = 5000,
    seed: int = 0,
    truth: np.ndarray | None = None,
) -> dict:
    """Silhouette (seeded sample), Davies–Bouldin, Calinski–Harabasz, D, and ARI/NMI against ``truth``.

    Spherical clusterings are scored on L2-normalised rows (silhouette with cosine distance). Metrics
    that need ≥ 2 clusters (and fewer clusters than rows) are ``None`` otherwise.

    Shapes:
        x: ``(n, d)``; labels: ``(n,)``; centroids: ``(k, d)``; truth: ``(n,)``.
    """
    from sklearn import metrics as skm

    from interestrec.cluster.assign import normalize_rows

    x = np.asarray(x, dtype=np.float32)
    labels = np.asarray(labels)
    if x.shape[0] != labels.shape[0]:
        raise ValueError(f"x has {x.shape[0]} rows but labels has {labels.shape[0]}")
    if metric == "spherical":
        x = normalize_rows(x)
    n_clusters = len(np.unique(labels))
    out: dict = {"n": int(x.shape[0]), "n_clusters": int(n_clusters)}
    ok = 2 <= n_clusters < x.shape[0]
    if ok:
        size = min(silhouette_sample, x.shape[0])
        out["silhouette"] = float(skm.silhouette_score(
            x, labels, metric="cosine" if metric == "spherical" else "euclidean",
            sample_size=size if size < x.shape[0] else None, random_state=seed,
        ))
        out["davies_bouldin"] = float(skm.davies_bouldin_score(x, labels))
        out["calinski_harabasz"] = float(skm.calinski_harabasz_score(x, labels))
    else:
        out.update(silhouette=None, davies_bouldin=None, calinski_harabasz=None)
    if centroids is not None:
        out["mean_centroid_distance"] = mean_centroid_distance(centroids)
    if truth is not None:
        out["ari"] = float(skm.adjusted_rand_score(truth, labels))
        out["nmi"] = float(skm.normalized_mutual_info_score(truth, labels))
    return out
