"""Embedding geometry: centring, whitening or removing the top principal components of item vectors.

Raw sentence-encoder vectors sit in a narrow cone (a high mean pairwise cosine), so every item looks
somewhat like every other and a dot product is dominated by a few shared directions. The transform is
fitted on the catalogue's vectors and applied to them; outputs are L2-normalised again, so consumers
keep using dot products as cosines.

Modes (``EncodeConfig.whiten``):

- ``none``: unchanged;
- ``center``: subtract the catalogue mean;
- ``whiten``: centre, rotate onto the principal axes and scale each by ``1 / sqrt(variance + eps)``
  (ZCA: rotated back, so the vectors stay in the original coordinates);
- ``remove_pcs``: centre and project out the top ``whiten_pcs`` principal directions
  ("all-but-the-top", Mu & Viswanath 2018).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MODES = ("none", "center", "whiten", "remove_pcs")


@dataclass(frozen=True)
class Whitening:
    """A fitted transform ``y = normalise((x − mean) · W)``.

    Shapes:
        mean: ``(d,)``; matrix: ``(d, d)``.
    """

    mode: str
    mean: np.ndarray
    matrix: np.ndarray

    def transform(self, x: np.ndarray) -> np.ndarray:
        """Apply to vectors; zero rows stay zero. Shapes: ``(n, d)`` → ``(n, d)`` float32."""
        x = np.asarray(x, np.float64)
        if x.ndim != 2 or x.shape[1] != len(self.mean):
            raise ValueError(f"Whitening.transform: expected (n, {len(self.mean)}) vectors, got {x.shape}")
        if self.mode == "none":
            return x.astype(np.float32)
        zero = ~np.any(x, axis=1)
        y = (x - self.mean) @ self.matrix
        norm = np.linalg.norm(y, axis=1, keepdims=True)
        y = np.divide(y, norm, out=np.zeros_like(y), where=norm > 0)
        y[zero] = 0.0
        return y.astype(np.float32)


def fit_whitening(x: np.ndarray, mode: str = "whiten", pcs: int = 2, eps: float = 1e-3) -> Whitening:
    """Fit the transform of ``mode`` on the catalogue's vectors (all-zero rows, items without a vector, ignored).

    Args:
        x: item vectors. mode: one of :data:`MODES`. pcs: directions removed by ``remove_pcs``.
        eps: added to every variance before ``whiten`` scales by its inverse square root.

    Shapes:
        x: ``(n, d)``; the fitted mean ``(d,)`` and matrix ``(d, d)``.
    """
    if mode not in MODES:
        raise ValueError(f"whitening mode must be one of {MODES}, got '{mode}'")
    x = np.asarray(x, np.float64)
    d = x.shape[1]
    x = x[np.any(x, axis=1)]
    if mode == "none" or len(x) == 0:
        return Whitening("none" if len(x) == 0 else mode, np.zeros(d), np.eye(d))
    mean = x.mean(0)
    if mode == "center":
        return Whitening(mode, mean, np.eye(d))
    xc = x - mean
    cov = xc.T @ xc / max(len(x) - 1, 1)
    var, vecs = np.linalg.eigh(cov)  # ascending
    var, vecs = var[::-1], vecs[:, ::-1]
    if mode == "whiten":
        return Whitening(mode, mean, (vecs / np.sqrt(np.maximum(var, 0.0) + eps)) @ vecs.T)
    if not 0 < pcs < d:
        raise ValueError(f"remove_pcs needs 0 < pcs < {d}, got {pcs}")
    top = vecs[:, :pcs]
    return Whitening(mode, mean, np.eye(d) - top @ top.T)


def mean_pairwise_cosine(x: np.ndarray) -> float:
    """Mean cosine over all pairs ``i ≠ j`` of non-zero vectors, exactly, in ``O(n·d)``.

    For unit vectors ``Σ_{i≠j} v_i·v_j = ‖Σ v_i‖² − n``.
    """
    x = np.asarray(x, np.float64)
    norm = np.linalg.norm(x, axis=1)
    x = x[norm > 0] / norm[norm > 0, None]
    n = len(x)
    if n < 2:
        return 0.0
    s = x.sum(0)
    return float((s @ s - n) / (n * (n - 1)))


def mean_pairwise_cosine_reference(x: np.ndarray) -> float:
    """:func:`mean_pairwise_cosine` by the full cosine matrix (the reference; ``O(n²·d)``)."""
    x = np.asarray(x, np.float64)
    x = x[np.linalg.norm(x, axis=1) > 0]
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    n = len(x)
    if n < 2:
        return 0.0
    c = x @ x.T
    return float((c.sum() - np.trace(c)) / (n * (n - 1)))
