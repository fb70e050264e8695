"""Nearest-centroid assignment and per-shard partial statistics via chunked GEMM.

Distances use ``‖x‖² − 2·x·c + ‖c‖²``: one ``(tile, K)`` float32 GEMM per tile of rows, ``‖c‖²`` added
in place, a row-wise argmin, and ``index_add_`` of the tile's rows into per-cluster sums (accumulated in
float64). Scratch memory is ``O(tile × K)``; nothing ``O(n × K)`` is ever allocated.

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

    Per tile of rows: ``D = x·(−2cᵀ)`` (one float32 GEMM into a reused buffer), ``D += ‖c‖²``, a
    SIMD argmin per row, then the tile's rows are added into float32 per-cluster sums
    (``torch.index_add_``) that are accumulated in float64 across tiles.

    Args:
        x: rows (unit rows for spherical).
        xsq: precomputed squared norms of ``x``.
        centroids: current centroids.
        metric: ``euclidean`` or ``spherical``.
        chunk_size: cap on the rows per GEMM tile (see :func:`gemm_rows`; scratch is ``tile × K`` floats).
        labels_out: optional int32 array filled with each row's label.
        dist_out: optional float32 array filled with each row's distance.

    Shapes:
        x: ``(n, d)`` float32; xsq: ``(n,)`` float32; centroids: ``(K, d)``; labels_out/dist_out: ``(n,)``.
    """
    import torch

    k, d = centroids.shape
    n = x.shape[0]
    tile = gemm_rows(chunk_size, k)
    c64 = np.asarray(centroids, dtype=np.float64)
    cm2t = np.ascontiguousarray(-2.0 * c64.T, dtype=np.float32)  # (d, K)
    csq = (c64**2).sum(1).astype(np.float32)
    buf = np.empty((min(tile, max(n, 1)), k), dtype=np.float32)
    sums = np.zeros((k, d), dtype=np.float64)
    part = np.zeros((k, d), dtype=np.float32)
    part_t = torch.from_numpy(part)
    counts = np.zeros(k, dtype=np.int64)
    inertia = 0.0
    half = metric == "spherical"
    for s in range(0, n, tile):
        e = min(s + tile, n)
        xc = x[s:e]
        dmat = np.matmul(xc, cm2t, out=buf[: e - s])
        dmat += csq
        lab = dmat.argmin(axis=1)
        dist = dmat[np.arange(e - s), lab]
        dist += xsq[s:e]
        np.maximum(dist, 0.0, out=dist)
        if half:
            dist *= 0.5
        part.fill(0.0)
        part_t.index_add_(0, torch.from_numpy(lab), torch.from_numpy(xc))
        sums += part
        counts += np.bincount(lab, minlength=k)
        inertia += float(dist.sum(dtype=np.float64))
        if labels_out is not None:
            labels_out[s:e] = lab
        if dist_out is not None:
            dist_out[s:e] = dist
    return PartialStats(sums, counts, inertia)


def gemm_rows(chunk_size: int, k: int) -> int:
    """Rows per GEMM tile: at most ``chunk_size``, and about 512K distances (2 MiB) so a tile stays in cache."""
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be ≥ 1, got {chunk_size}")
    return int(min(chunk_size, max(256, 2**19 // max(k, 1))))


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
    elif not x.flags.writeable:  # read-only (zero-copy Arrow) memory cannot be viewed as a torch tensor
        x = x.copy()
    labels = np.empty(x.shape[0], dtype=np.int32)
    dist = np.empty(x.shape[0], dtype=np.float32)
    partial_stats(x, squared_norms(x), c, metric, chunk_size, labels, dist)
    return labels, dist
