"""Nearest-centroid assignment and per-shard partial statistics via chunked GEMM.

Distances use ``‖x‖² − 2·x·c + ‖c‖²``: one ``(chunk, K)`` GEMM per chunk of rows (``torch.addmm`` with
``‖c‖²`` as the bias), an argmin over the chunk, and ``index_add_`` of the chunk's rows into float64
per-cluster sums. Scratch memory is ``O(chunk × K)``; nothing ``O(n × K)`` is ever allocated.

For ``metric="spherical"`` rows and centroids are unit vectors and the reported distance is the cosine
distance ``1 − x·c`` (= half the squared euclidean distance between unit vectors).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

METRICS = ("euclidean", "spherical")


@dataclass
class PartialStats:
    """Sufficient statistics of one shard (or their sum over shards) for given centroids.

    Shapes:
        sums: ``(K, d)`` float64, sum of the rows assigned to each centroid.
        counts: ``(K,)`` int64.
    """

    sums: np.ndarray
    counts: np.ndarray
    inertia: float


def check_metric(metric: str) -> None:
    """Raise ``ValueError`` unless ``metric`` is a supported metric name."""
    if metric not in METRICS:
        raise ValueError(f"unknown metric '{metric}'; expected one of {METRICS}")


def validate_vectors(x: np.ndarray, what: str = "vectors", metric: str = "euclidean") -> np.ndarray:
    """Return ``x`` as C-contiguous float32 after checking shape and values.

    Raises:
        ValueError: not 2-D, empty, non-finite values (NaN/inf, with the first bad row named) or, for
            ``metric="spherical"``, rows of zero norm.

    Shapes:
        x: ``(n, d)``.
    """
    x = np.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"{what} must be a 2-D (n, d) array, got shape {x.shape}")
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"{what} is empty (shape {x.shape})")
    if not np.issubdtype(x.dtype, np.number):
        raise ValueError(f"{what} must be numeric, got dtype {x.dtype}")
    x = np.ascontiguousarray(x, dtype=np.float32)
    finite = np.isfinite(x).all(axis=1)
    if not finite.all():
        bad = np.flatnonzero(~finite)
        raise ValueError(f"{what} contain NaN/inf values in {bad.size} row(s), first at row {int(bad[0])}")
    if metric == "spherical":
        norms = np.linalg.norm(x, axis=1)
        if (norms == 0).any():
            raise ValueError(f"{what} has {int((norms == 0).sum())} zero-norm row(s); spherical k-means needs non-zero vectors")
    return x


def normalize_rows(x: np.ndarray) -> np.ndarray:
    """L2-normalise the rows of a float array (in a new float32 array).

    Shapes:
        x: ``(n, d)`` → ``(n, d)``.
    """
    x = np.asarray(x, dtype=np.float64)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.where(norms == 0, 1.0, norms)).astype(np.float32)


def _torch():
    import torch

    return torch


def chunk_distances(xc, xsq_c, c_t, csq_t, metric: str):
    """Labels and distances of one chunk (torch tensors).

    Shapes:
        xc: ``(B, d)`` float32; xsq_c: ``(B,)``; c_t: ``(K, d)``; csq_t: ``(K,)`` → labels ``(B,)`` int64,
        distances ``(B,)`` float32.
    """
    torch = _torch()
    d = torch.addmm(csq_t.unsqueeze(0), xc, c_t.T, beta=1.0, alpha=-2.0)
    mn, lab = d.min(dim=1)
    dist = (mn + xsq_c).clamp_(min=0.0)
    if metric == "spherical":
        dist = dist * 0.5
    return lab, dist


def partial_stats(
    x: np.ndarray,
    xsq: np.ndarray,
    centroids: np.ndarray,
    metric: str = "euclidean",
    chunk_size: int = 16384,
    labels_out: np.ndarray | None = None,
    dist_out: np.ndarray | None = None,
) -> PartialStats:
    """Sums, counts and inertia of ``x`` assigned to its nearest centroid.

    Args:
        x: rows (unit rows for spherical).
        xsq: precomputed squared norms of ``x``.
        centroids: current centroids.
        metric: ``euclidean`` or ``spherical``.
        chunk_size: rows per GEMM (bounds scratch to ``chunk × K`` floats).
        labels_out: optional int32 array filled with each row's label.
        dist_out: optional float32 array filled with each row's distance.

    Shapes:
        x: ``(n, d)`` float32; xsq: ``(n,)`` float32; centroids: ``(K, d)``; labels_out/dist_out: ``(n,)``.
    """
    torch = _torch()
    k, d = centroids.shape
    xt = torch.from_numpy(x)
    xsq_t = torch.from_numpy(xsq)
    c_t = torch.from_numpy(np.array(centroids, dtype=np.float32, order="C"))  # own, writable copy
    csq_t = (c_t.double() ** 2).sum(1).float()
    sums = torch.zeros((k, d), dtype=torch.float64)
    counts = torch.zeros(k, dtype=torch.int64)
    inertia = 0.0
    lab_t = torch.from_numpy(labels_out) if labels_out is not None else None
    dist_t = torch.from_numpy(dist_out) if dist_out is not None else None
    ones = None
    for s in range(0, x.shape[0], chunk_size):
        e = min(s + chunk_size, x.shape[0])
        xc = xt[s:e]
        lab, dist = chunk_distances(xc, xsq_t[s:e], c_t, csq_t, metric)
        sums.index_add_(0, lab, xc.double())
        if ones is None or ones.shape[0] != e - s:
            ones = torch.ones(e - s, dtype=torch.int64)
        counts.index_add_(0, lab, ones)
        inertia += float(dist.double().sum())
        if lab_t is not None:
            lab_t[s:e] = lab.to(torch.int32)
        if dist_t is not None:
            dist_t[s:e] = dist
    return PartialStats(sums.numpy(), counts.numpy(), inertia)


def squared_norms(x: np.ndarray) -> np.ndarray:
    """Row squared norms as float32 (accumulated in float64).

    Shapes:
        x: ``(n, d)`` → ``(n,)``.
    """
    return np.einsum("ij,ij->i", x, x, dtype=np.float64).astype(np.float32)


def assign(
    x: np.ndarray, centroids: np.ndarray, metric: str = "euclidean", chunk_size: int = 16384
) -> tuple[np.ndarray, np.ndarray]:
    """Nearest centroid of every row.

    For ``spherical`` the rows and centroids are L2-normalised first and the distance is ``1 − cos``;
    for ``euclidean`` it is the squared euclidean distance.

    Raises:
        ValueError: bad metric, non-finite values or a dimension mismatch.

    Shapes:
        x: ``(n, d)``; centroids: ``(K, d)`` → labels ``(n,)`` int32, distances ``(n,)`` float32.
    """
    check_metric(metric)
    x = validate_vectors(x, "x", metric)
    c = validate_vectors(centroids, "centroids", metric)
    if c.shape[1] != x.shape[1]:
        raise ValueError(f"dimension mismatch: x has d={x.shape[1]}, centroids have d={c.shape[1]}")
    if metric == "spherical":
        x, c = normalize_rows(x), normalize_rows(c)
    labels = np.empty(x.shape[0], dtype=np.int32)
    dist = np.empty(x.shape[0], dtype=np.float32)
    partial_stats(x, squared_norms(x), c, metric, chunk_size, labels, dist)
    return labels, dist
