"""Ranking metrics for full-ranking, single-target (leave-last-out) evaluation.

Everything is derived from the 0-based *rank* of each user's held-out item among all candidate items
(``rank = #items scoring higher + #items scoring equal with a smaller index``: ties are broken by item
index, deterministically), plus the top-k lists for the list-level metrics. All functions are
vectorised over users; users without a target (rank ``-1``) are excluded by the caller.
"""

from __future__ import annotations

import numpy as np


def hit_rate(rank: np.ndarray, k: int) -> float:
    """HR@k: share of users whose target is in the top k.

    Shapes:
        rank: ``(n_users,)`` 0-based ranks.
    """
    return float(np.mean(rank < k)) if len(rank) else 0.0


def recall(rank: np.ndarray, k: int) -> float:
    """Recall@k; with one held-out item per user it equals HR@k."""
    return hit_rate(rank, k)


def ndcg(rank: np.ndarray, k: int) -> float:
    """NDCG@k with a single relevant item: ``1 / log2(rank + 2)`` inside the top k, else 0 (IDCG = 1)."""
    if not len(rank):
        return 0.0
    gain = np.where(rank < k, 1.0 / np.log2(rank.astype(np.float64) + 2.0), 0.0)
    return float(gain.mean())


def mrr(rank: np.ndarray) -> float:
    """Mean reciprocal rank over the full ranking (no cut-off)."""
    return float(np.mean(1.0 / (rank.astype(np.float64) + 1.0))) if len(rank) else 0.0


def coverage(topk: np.ndarray, n_items: int) -> float:
    """Catalog coverage: share of all items that appear in at least one user's top-k list.

    Shapes:
        topk: ``(n_users, k)`` item indices (``-1`` = empty slot).
    """
    items = np.unique(topk[topk >= 0])
    return float(len(items) / n_items) if n_items else 0.0


def novelty(topk: np.ndarray, item_popularity: np.ndarray, n_users: int) -> float:
    """Mean self-information ``-log2(p(i))`` of recommended items, ``p(i) = max(pop_i, 1) / n_users``.

    Shapes:
        topk: ``(n_users, k)``; item_popularity: ``(n_items,)`` train users per item.
    """
    rec = topk[topk >= 0]
    if not len(rec):
        return 0.0
    p = np.maximum(item_popularity[rec], 1) / max(n_users, 1)
    return float(np.mean(-np.log2(p)))


def intra_list_diversity(topk: np.ndarray, item_features: np.ndarray) -> float:
    """Mean pairwise ``1 - cos`` between the items of each list, averaged over lists.

    Shapes:
        topk: ``(n_users, k)``; item_features: ``(n_items, f)`` (vectors or multi-hot attributes).
    """
    if topk.shape[1] < 2 or not len(topk):
        return 0.0
    f = item_features.astype(np.float32)
    norm = np.linalg.norm(f, axis=1, keepdims=True)
    f = np.divide(f, norm, out=np.zeros_like(f), where=norm > 0)
    v = f[np.maximum(topk, 0)]  # (u, k, f)
    sim = np.einsum("ukf,ulf->ukl", v, v)
    k = topk.shape[1]
    off = ~np.eye(k, dtype=bool)
    return float(np.mean(1.0 - sim[:, off]))
