"""Choosing K: elbow of the inertia curve (automatic knee) and silhouette on a seeded sample."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class KSelection:
    """The chosen K, a one-line reason, and the per-K curve.

    Attributes:
        grid: one ``{"k", "inertia", "silhouette"}`` dict per candidate K, in grid order.
    """

    k: int
    reason: str
    knee: int
    best_silhouette_k: int
    grid: list[dict] = field(default_factory=list)


def knee(ks: list[int], inertias: list[float]) -> int:
    """Elbow of a decreasing inertia curve: the K farthest below the chord from the first to the last point.

    Both axes are scaled to ``[0, 1]`` first (the Kneedle normalisation); with fewer than 3 points the
    first K is returned.
    """
    if len(ks) != len(inertias) or not ks:
        raise ValueError("knee needs equally long, non-empty ks and inertias")
    if len(ks) < 3:
        return int(ks[0])
    x = np.asarray(ks, dtype=np.float64)
    y = np.asarray(inertias, dtype=np.float64)
    xn = (x - x[0]) / (x[-1] - x[0])
    span = y.max() - y.min()
    yn = (y - y.min()) / span if span > 0 else np.zeros_like(y)
    chord = yn[0] + (yn[-1] - yn[0]) * xn
    return int(x[int(np.argmax(chord - yn))])


def select_k(
    x: np.ndarray,
    grid: tuple[int, ...] | list[int],
    metric: str = "euclidean",
    seed: int = 0,
    sample: int = 5000,
    init: str = "k-means++",
    max_iter: int = 50,
    tol: float = 1e-4,
    slack: float = 0.02,
) -> KSelection:
    """Fit the reference k-means for every K of ``grid`` on a seeded sample and pick one.

    Rule: the K with the highest silhouette, unless the elbow's K has a silhouette within ``slack``
    (absolute) of it — then the elbow wins (the curve flattens there and the clusters are as separable).

    Raises:
        ValueError: no K in ``grid`` is smaller than the number of rows.

    Shapes:
        x: ``(n, d)``.
    """
    from interestrec.cluster.lloyd import kmeans
    from interestrec.cluster.metrics import cluster_metrics

    n = x.shape[0]
    if n > sample:
        idx = np.sort(np.random.default_rng([seed, 7]).choice(n, sample, replace=False))
        x = x[idx]
    ks = sorted({int(k) for k in grid if 2 <= k < x.shape[0]})
    if not ks:
        raise ValueError(f"no K in grid {tuple(grid)} fits {x.shape[0]} rows (need 2 ≤ K < rows)")
    from interestrec import progress

    rows = []
    for k in progress.track(ks, "cluster: K grid", unit="K"):
        r = kmeans(x, k, metric=metric, init=init, max_iter=max_iter, tol=tol, seed=seed)
        m = cluster_metrics(x, r.labels, metric=metric, silhouette_sample=sample, seed=seed)
        rows.append({"k": k, "inertia": r.inertia, "silhouette": m["silhouette"]})
    sil = np.array([r["silhouette"] if r["silhouette"] is not None else -1.0 for r in rows])
    kb = ks[int(np.argmax(sil))]
    kn = knee(ks, [r["inertia"] for r in rows])
    s_best, s_knee = float(sil.max()), float(sil[ks.index(kn)])
    if kn == kb:
        k, reason = kb, f"K={kb}: the inertia elbow and the highest silhouette ({s_best:.3f}) agree"
    elif s_knee >= s_best - slack:
        k, reason = kn, (f"K={kn}: inertia elbow; its silhouette {s_knee:.3f} is within {slack} of the best "
                         f"({s_best:.3f} at K={kb})")
    else:
        k, reason = kb, (f"K={kb}: highest silhouette {s_best:.3f}; the elbow K={kn} scores only {s_knee:.3f}")
    return KSelection(k, reason, kn, kb, rows)
