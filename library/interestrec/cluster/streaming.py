"""Streaming / mini-batch k-means update with forgetting (Spark MLlib ``StreamingKMeans`` semantics).

For a batch with ``m_j`` rows assigned to centroid ``j`` (mean ``x̄_j``) and decay ``a``:

    n_j' = a·n_j + m_j
    c_j' = (a·n_j·c_j + m_j·x̄_j) / n_j'

``a = 1`` weighs all data equally; ``a = 0`` keeps only the newest batch. With ``time_unit="points"`` the
discount is ``a ** m`` (``m`` = rows in the batch). A cluster whose weight falls below ``1e-8`` of the
largest one is revived by splitting the largest cluster (as Spark does). Spherical centroids are
renormalised after the update.
"""

from __future__ import annotations

import math

import numpy as np

from interestrec.cluster.assign import assign, check_metric, normalize_rows, validate_vectors


def half_life_to_decay(half_life: float) -> float:
    """Decay factor ``a`` such that data ``half_life`` batches (or points) old weighs one half.

    ``a = exp(ln 0.5 / half_life)``; raises ``ValueError`` unless ``half_life > 0``.
    """
    if not half_life > 0 or not math.isfinite(half_life):
        raise ValueError(f"half_life must be a positive finite number, got {half_life}")
    return math.exp(math.log(0.5) / half_life)


def streaming_update(
    centroids: np.ndarray,
    counts: np.ndarray,
    x: np.ndarray,
    decay: float = 1.0,
    metric: str = "euclidean",
    time_unit: str = "batches",
) -> tuple[np.ndarray, np.ndarray]:
    """One streaming k-means step: warm-start ``centroids`` with weights ``counts`` and fold in batch ``x``.

    Raises:
        ValueError: decay outside ``[0, 1]``, NaN/inf rows, a dimension or length mismatch.

    Shapes:
        centroids: ``(k, d)``; counts: ``(k,)``; x: ``(m, d)`` → centroids ``(k, d)`` float32, counts
        ``(k,)`` float64 (decayed weights).
    """
    check_metric(metric)
    if not 0.0 <= decay <= 1.0:
        raise ValueError(f"decay must be in [0, 1], got {decay}")
    if time_unit not in ("batches", "points"):
        raise ValueError(f"time_unit must be 'batches' or 'points', got '{time_unit}'")
    c = validate_vectors(centroids, "centroids", metric).astype(np.float64)
    w = np.asarray(counts, dtype=np.float64)
    if w.shape != (c.shape[0],) or (w < 0).any() or not np.isfinite(w).all():
        raise ValueError(f"counts must be {c.shape[0]} finite non-negative weights, got shape {w.shape}")
    x = validate_vectors(x, "x", metric)
    if x.shape[1] != c.shape[1]:
        raise ValueError(f"dimension mismatch: x has d={x.shape[1]}, centroids have d={c.shape[1]}")
    if metric == "spherical":
        c = normalize_rows(c).astype(np.float64)
        x = normalize_rows(x)
    labels, _ = assign(x, c.astype(np.float32), metric)
    k = c.shape[0]
    m = np.bincount(labels, minlength=k).astype(np.float64)
    sums = np.zeros_like(c)
    _index_add(sums, labels, x)
    discount = decay if time_unit == "batches" else decay ** x.shape[0]
    w = w * discount
    new_w = w + m
    lam = m / np.maximum(new_w, 1e-16)
    hit = m > 0
    c[hit] = (1.0 - lam[hit, None]) * c[hit] + (lam[hit] / m[hit])[:, None] * sums[hit]
    largest, smallest = int(np.argmax(new_w)), int(np.argmin(new_w))
    if new_w[smallest] < 1e-8 * new_w[largest]:
        half = (new_w[largest] + new_w[smallest]) / 2.0
        new_w[largest] = new_w[smallest] = half
        p = 1e-14 * np.maximum(np.abs(c[largest]), 1.0)
        base = c[largest].copy()
        c[largest], c[smallest] = base + p, base - p
    out = c.astype(np.float32)
    return (normalize_rows(out) if metric == "spherical" else out), new_w


def _index_add(sums: np.ndarray, labels: np.ndarray, x: np.ndarray) -> None:
    import torch

    t = torch.from_numpy(sums)
    t.index_add_(0, torch.from_numpy(labels.astype(np.int64)), torch.from_numpy(x).double())
