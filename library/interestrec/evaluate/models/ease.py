"""EASE^R (Steck, WWW 2019): closed-form item–item linear autoencoder with a zero diagonal."""

from __future__ import annotations

import numpy as np

from interestrec.evaluate.base import Interactions, Recommender, register


def ease_weights(x, lam: float) -> np.ndarray:
    """``B = I - P · diag(1/diag(P))`` with ``P = (XᵀX + λI)⁻¹``, so ``diag(B) = 0``.

    With fewer users than items ``P`` comes from the Woodbury identity,
    ``P = (I - Xᵀ (XXᵀ + λI)⁻¹ X) / λ``: a users × users solve instead of an items × items inverse
    (on ml-latest-small, 610 × 610 instead of 9,742 × 9,742). :func:`ease_weights_direct` is the
    plain form, kept as the reference.

    Shapes:
        x: sparse or dense ``(n_users, n_items)``; returns dense ``(n_items, n_items)`` float32.
    """
    import torch

    n_users, n_items = x.shape
    if n_users >= n_items:
        return ease_weights_direct(x, lam)
    xd = torch.as_tensor(x.toarray() if hasattr(x, "toarray") else np.asarray(x), dtype=torch.float64)
    k = xd @ xd.T
    k.diagonal().add_(lam)
    m = torch.linalg.solve(k, xd)  # (XXᵀ + λI)⁻¹ X, float64 (small)
    p = -(xd.T.to(torch.float32) @ m.to(torch.float32))  # the big product in float32
    p.diagonal().add_(1.0)
    p /= lam
    b = -p / p.diagonal()[None, :]
    b.diagonal().zero_()
    return b.numpy()


def ease_weights_direct(x, lam: float) -> np.ndarray:
    """:func:`ease_weights` by the items × items inverse (Cholesky). Shapes: as there."""
    import torch

    g = torch.as_tensor((x.T @ x).toarray() if hasattr(x, "toarray") else x.T @ x, dtype=torch.float32)
    g.diagonal().add_(lam)
    p = torch.cholesky_inverse(torch.linalg.cholesky(g))
    b = -p / p.diagonal()[None, :]
    b.diagonal().zero_()
    return b.to(torch.float32).numpy()


@register
class EASE(Recommender):
    name = "ease"
    baseline = True
    grid = [{"lam": 25.0}, {"lam": 50.0}, {"lam": 100.0}, {"lam": 250.0}, {"lam": 500.0}]

    def fit(self, data: Interactions) -> EASE:
        x = data.train.astype(np.float32).tocsr()
        # items nobody interacted with have all-zero rows/columns in B: solve only for the others
        self.active = np.flatnonzero(np.asarray(x.sum(0)).ravel() > 0)
        self.x = x[:, self.active]
        self.b = ease_weights(self.x, float(self.params.get("lam", 250.0)))
        self.n_items = data.n_items
        return self

    def score(self, users: np.ndarray) -> np.ndarray:
        out = np.zeros((len(users), self.n_items), np.float32)
        out[:, self.active] = self.x[users] @ self.b
        return out
