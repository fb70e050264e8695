"""ItemKNN: item–item cosine similarity over the train matrix, pruned to the top-k neighbours per item."""

from __future__ import annotations

import numpy as np

from interestrec.evaluate.base import Interactions, Recommender, register


def cosine_knn(x, k: int, shrink: float = 0.0):
    """Item–item cosine similarity ``S`` (diagonal zeroed), each column keeping its ``k`` largest entries.

    Shapes:
        x: sparse ``(n_users, n_items)``; returns sparse ``(n_items, n_items)`` float32.
    """
    import scipy.sparse as sp

    x = sp.csr_matrix(x, dtype=np.float32)
    co = (x.T @ x).toarray()
    norms = np.sqrt(np.diag(co)).astype(np.float32)
    denom = np.outer(norms, norms) + shrink + 1e-12
    sim = co / denom
    np.fill_diagonal(sim, 0.0)
    n = sim.shape[0]
    k = min(k, n - 1) if n > 1 else 0
    if k <= 0:
        return sp.csr_matrix((n, n), dtype=np.float32)
    keep = np.argpartition(-sim, k - 1, axis=0)[:k]  # (k, n): top-k rows per column
    cols = np.broadcast_to(np.arange(n), keep.shape)
    vals = sim[keep, cols]
    s = sp.csr_matrix((vals.ravel(), (keep.ravel(), cols.ravel())), shape=(n, n), dtype=np.float32)
    s.eliminate_zeros()
    return s


@register
class ItemKNN(Recommender):
    name = "itemknn"
    baseline = True
    grid = [{"k": 10}, {"k": 20}, {"k": 50}, {"k": 100}]

    def fit(self, data: Interactions) -> ItemKNN:
        self.x = data.train.astype(np.float32).tocsr()
        self.sim = cosine_knn(self.x, int(self.params.get("k", 100)), float(self.params.get("shrink", 0.0)))
        return self

    def score(self, users: np.ndarray) -> np.ndarray:
        return np.asarray((self.x[users] @ self.sim).todense(), dtype=np.float32)
