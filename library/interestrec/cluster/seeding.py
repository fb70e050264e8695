"""Seeded initialisation: k-means++ on a sample and k-means‖ (Bahmani et al., 2012, as in Spark MLlib).

Both work through :class:`~interestrec.cluster.shard.ClusterData`, so they give the same centroids
whatever the number of shards: sample indices and sampling uniforms are drawn per *global* row index,
and the small final steps run on rank 0 and are broadcast.
"""

from __future__ import annotations

import numpy as np

from interestrec.cluster.assign import normalize_rows, partial_stats, squared_norms
from interestrec.cluster.shard import ClusterData

INITS = ("k-means++", "k-means||")


def kmeans_plusplus(
    x: np.ndarray, k: int, seed: int = 0, weights: np.ndarray | None = None, n_local_trials: int | None = None
) -> np.ndarray:
    """Greedy k-means++ (Arthur & Vassilvitskii; greedy trials as in scikit-learn) on in-memory rows.

    Args:
        x: candidate rows.
        k: number of centres to pick (``k ≤ n``).
        seed: RNG seed.
        weights: optional non-negative row weights (k-means‖ reduces its weighted candidates with them).
        n_local_trials: candidates tried per step (default ``2 + ln k``).

    Shapes:
        x: ``(n, d)``; weights: ``(n,)`` → ``(k, d)`` float32.
    """
    import torch

    n = x.shape[0]
    if k > n:
        raise ValueError(f"k-means++ needs k ≤ n rows, got k={k}, n={n}")
    rng = np.random.default_rng(seed)
    w = np.ones(n) if weights is None else np.asarray(weights, dtype=np.float64)
    trials = n_local_trials or 2 + int(np.log(k))
    xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    xsq = torch.from_numpy(squared_norms(x)).double()

    def d2(idx: np.ndarray) -> np.ndarray:
        c = xt[torch.from_numpy(np.asarray(idx, dtype=np.int64))]
        dd = xsq[:, None] - 2.0 * (xt @ c.T).double() + (c.double() ** 2).sum(1)[None, :]
        return dd.clamp_(min=0.0).numpy().T  # (len(idx), n)

    first = int(rng.choice(n, p=w / w.sum()))
    centers = [first]
    closest = d2(np.array([first]))[0]
    for _ in range(1, k):
        pot = float((w * closest).sum())
        if pot <= 0:  # every row coincides with a centre: take unused rows in order
            unused = np.setdiff1d(np.arange(n), centers)
            centers.append(int(unused[0]))
            continue
        cum = np.cumsum(w * closest)
        cand = np.searchsorted(cum, rng.random(trials) * cum[-1], side="right")
        cand = np.minimum(cand, n - 1)
        dc = np.minimum(closest[None, :], d2(cand))
        best = int(np.argmin((dc * w[None, :]).sum(1)))
        centers.append(int(cand[best]))
        closest = dc[best]
    return x[np.array(centers)].astype(np.float32)


def sample_indices(n: int, m: int, seed: int) -> np.ndarray:
    """Sorted seeded sample of ``min(m, n)`` distinct global row indices."""
    if m >= n:
        return np.arange(n, dtype=np.int64)
    return np.sort(np.random.default_rng([seed, 1]).choice(n, m, replace=False)).astype(np.int64)


def init_plusplus(data: ClusterData, k: int, seed: int = 0, sample_size: int | None = None) -> np.ndarray:
    """k-means++ on a seeded sample of all shards' rows (default ``max(20000, 40·k)`` rows), on rank 0.

    Shapes:
        returns ``(k, d)`` float32, identical on every rank.
    """
    m = sample_size or max(20000, 40 * k)
    idx = sample_indices(data.count, m, seed)
    rows = data.rows(idx)
    c = kmeans_plusplus(rows, k, seed) if data.rank == 0 else np.zeros((k, data.dim), dtype=np.float32)
    return data.broadcast(c)


def init_parallel(data: ClusterData, k: int, seed: int = 0, rounds: int = 5, oversampling: float = 2.0) -> np.ndarray:
    """k-means‖: ``rounds`` passes that each keep every row with probability ``min(1, ℓ·D²(x)/φ)``
    (``ℓ = oversampling·k``), then weighted k-means++ plus a few weighted Lloyd steps on the candidates.

    Shapes:
        returns ``(k, d)`` float32, identical on every rank.
    """
    rng = np.random.default_rng([seed, 2])
    first = int(rng.integers(data.count))
    centers = data.rows(np.array([first]))
    ell = oversampling * k
    dist = data.min_dist(centers)
    for r in range(rounds):
        phi = float(data.allreduce(np.array([dist.astype(np.float64).sum()]))[0])
        if phi <= 0:
            break
        u = data.uniform((seed, 3, r))
        _, new = data.local_rows_where(u < ell * dist.astype(np.float64) / phi)
        if len(new) == 0:
            continue
        centers = np.concatenate([centers, new])
        dist = np.minimum(dist, data.min_dist(new))
    if len(centers) < k:  # too few candidates (tiny or degenerate data): top up with a seeded sample
        extra = data.rows(sample_indices(data.count, k, seed))
        centers = np.concatenate([centers, extra])
    st = data.stats(centers)
    weights = st.counts.astype(np.float64)
    if data.rank == 0:
        c = kmeans_plusplus(centers, k, seed, weights=weights + 1e-12)
        c = _weighted_lloyd(centers, weights, c, data.metric, iters=10)
    else:
        c = np.zeros((k, data.dim), dtype=np.float32)
    return data.broadcast(c)


def _weighted_lloyd(x: np.ndarray, w: np.ndarray, c: np.ndarray, metric: str, iters: int) -> np.ndarray:
    xsq = squared_norms(x)
    lab = np.empty(x.shape[0], dtype=np.int32)
    for _ in range(iters):
        partial_stats(x, xsq, c, metric, 16384, lab, None)
        sums = np.zeros(c.shape, dtype=np.float64)
        np.add.at(sums, lab, x.astype(np.float64) * w[:, None])
        wsum = np.bincount(lab, weights=w, minlength=c.shape[0])
        nz = wsum > 0
        c = c.copy()
        c[nz] = (sums[nz] / wsum[nz, None]).astype(np.float32)
        if metric == "spherical":
            c = normalize_rows(c)
    return c.astype(np.float32)


def initial_centroids(data: ClusterData, k: int, init: str = "k-means++", seed: int = 0) -> np.ndarray:
    """Dispatch to :func:`init_plusplus` or :func:`init_parallel`; spherical centroids are normalised.

    Shapes:
        returns ``(k, d)`` float32.
    """
    if init == "k-means++":
        c = init_plusplus(data, k, seed)
    elif init == "k-means||":
        c = init_parallel(data, k, seed)
    else:
        raise ValueError(f"unknown init '{init}'; expected one of {INITS}")
    return normalize_rows(c) if data.metric == "spherical" else c.astype(np.float32)
