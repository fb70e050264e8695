"""Clustering each time window, warm-started from the previous window's centroids."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class WindowClusters:
    """One window's clustering (labels are local indices into ``centroids``).

    ``vectors`` is ``None`` for a window whose vectors never came to the driver (read from the files
    by the distributed k-means).

    Shapes:
        user_ids: ``(n,)``; labels: ``(n,)``; centroids: ``(k, d)``; vectors: ``(n, d)``.
    """

    window: int
    user_ids: np.ndarray
    labels: np.ndarray
    centroids: np.ndarray
    vectors: np.ndarray | None
    inertia: float


def local_fit(x: np.ndarray, k: int, init_centroids: np.ndarray | None, metric: str, seed: int):
    """The single-process reference fit (``interestrec.cluster.kmeans``)."""
    from interestrec.cluster import kmeans

    return kmeans(x, k, metric=metric, init_centroids=init_centroids, seed=seed, max_iter=100, tol=1e-5)


def cluster_windows(per_window: list[tuple[int, np.ndarray, np.ndarray]], k: int, init_centroids: np.ndarray | None = None,
                    mode: str = "warm", decay: float = 0.5, metric: str = "spherical", seed: int = 0,
                    fit: Callable | None = None) -> list[WindowClusters]:
    """Cluster each window in turn, each warm-started from the previous window's centroids.

    Args:
        per_window: ``(window, user_ids, vectors)`` in time order; ``vectors`` is an ``(n, d)`` array or
            anything else ``fit`` accepts with ``len() == n`` (e.g. where the window's rows lie) — then
            ``fit`` returns the labels in the order of ``user_ids``.
        init_centroids: centroids for the first window (e.g. the cluster stage's), else k-means++.
        mode: ``warm`` — Lloyd from the previous centroids; ``streaming`` — one decayed
            StreamingKMeans update of the previous centroids with the window's points.
        fit: ``fit(x, k, init_centroids, metric, seed) -> KMeansResult`` (default: the reference
            :func:`local_fit`; the stage passes the distributed k-means).
    """
    from interestrec.cluster import assign, streaming_update

    fit = fit or local_fit
    out: list[WindowClusters] = []
    prev, counts = init_centroids, None
    for window, users, x in per_window:
        kk = min(k, len(users))
        init = prev if prev is not None and len(prev) == kk else None
        if mode == "streaming" and init is not None:
            if not isinstance(x, np.ndarray):
                raise ValueError("dynamics mode 'streaming' needs each window's vectors as an array")
            if counts is None:
                counts = np.bincount(assign(x, init, metric)[0], minlength=kk).astype(np.float64)
            centroids, counts = streaming_update(init, counts, x, decay=decay, metric=metric)
            labels, dist = assign(x, centroids, metric)
            inertia = float(np.sum(dist))
        elif mode in ("warm", "streaming"):
            res = fit(x, kk, init, metric, seed)
            centroids, labels, inertia = res.centroids, res.labels, float(res.inertia)
            counts = np.bincount(labels, minlength=kk).astype(np.float64)
        else:
            raise ValueError(f"unknown dynamics mode '{mode}' (warm or streaming)")
        out.append(WindowClusters(window, users, np.asarray(labels), np.asarray(centroids, np.float32),
                                  x if isinstance(x, np.ndarray) else None, inertia))
        prev = np.asarray(centroids, np.float32)
    return out
