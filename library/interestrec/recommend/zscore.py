"""Per-row standardisation of score rows (the ``z`` of the fused score): the plain form and the one-pass sum
a served request uses, tested equal."""

from __future__ import annotations

import numpy as np

__all__ = ["add_z_rows", "z_rows"]


def z_rows(x: np.ndarray) -> np.ndarray:
    """Per-row standardisation (constant rows become zeros). Shapes: ``(b, n)`` → ``(b, n)``."""
    mu = x.mean(1, keepdims=True)
    sd = x.std(1, keepdims=True)
    return (x - mu) / np.where(sd > 0, sd, 1.0)


def add_z_rows(total: np.ndarray | None, x: np.ndarray, w: float) -> np.ndarray:
    """``total + w · z_rows(x)`` (``total`` ``None``: none yet), in five array passes instead of thirteen.

    The centred rows are computed once and reused for the variance (no ``E[x²] − μ²`` cancellation) and,
    scaled in place, for the sum; a served request adds four terms this way. Equal to the plain
    expression within float32 rounding (tested).

    Shapes:
        total: ``(b, n)`` float32 or ``None``; x: ``(b, n)``; returns ``(b, n)`` float32 (``total`` updated in place).
    """
    d = np.subtract(x, x.mean(1, keepdims=True), dtype=np.float32)
    var = np.einsum("ij,ij->i", d, d, dtype=np.float64) / max(x.shape[1], 1)
    sd = np.sqrt(var)
    d *= (w / np.where(sd > 0, sd, 1.0)).astype(np.float32)[:, None]
    if total is None:
        return d
    total += d
    return total
