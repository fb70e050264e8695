"""Multi-interest user representations (as Pinterest's PinnerSage).

A user's own item vectors are clustered (Ward linkage, cut where a merge would cost more than
``max_distance``, and never into more than ``max_interests`` groups); each
interest keeps its medoid item (the member with the least summed squared distance to the others), its
vector (the group's weighted mean, normalised) and a time-decayed importance (the group's share of
the user's decayed weight).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Interest:
    """One interest of a user.

    Shapes:
        vector: ``(d,)`` float32, unit length.
    """

    vector: np.ndarray
    medoid_item_id: int
    importance: float
    size: int


def user_interests(item_ids: np.ndarray, vectors: np.ndarray, weights: np.ndarray, max_interests: int = 4,
                   max_items: int = 200, max_distance: float = 1.5) -> list[Interest]:
    """Cluster one user's items into at most ``max_interests`` interests, most important first.

    Args:
        item_ids: the user's items (newest last). vectors: their vectors ``(n, d)``.
        weights: decayed event weights ``(n,)``. Only the ``max_items`` newest items are clustered.
        max_distance: Ward merge distance above which groups stay separate interests.

    Shapes:
        item_ids: ``(n,)``; vectors: ``(n, d)``; weights: ``(n,)``.
    """
    from scipy.cluster.hierarchy import fcluster, linkage

    n = len(item_ids)
    if len(vectors) != n or len(weights) != n:
        raise ValueError(f"user_interests: {n} item ids, {len(vectors)} vectors, {len(weights)} weights")
    if n == 0 or max_interests <= 0:
        return []
    item_ids, vectors, weights = item_ids[-max_items:], vectors[-max_items:], np.asarray(weights[-max_items:], float)
    n = len(item_ids)
    if n < 2 or max_interests == 1:
        labels = np.zeros(n, int)
    else:
        tree = linkage(np.asarray(vectors, np.float64), "ward")
        labels = fcluster(tree, max_distance, "distance") - 1
        if labels.max() + 1 > max_interests:
            labels = fcluster(tree, max_interests, "maxclust") - 1
    total = weights.sum() or 1.0
    out = []
    for c in np.unique(labels):
        m = labels == c
        w = weights[m] if weights[m].sum() > 0 else np.ones(m.sum())
        centre = (vectors[m] * w[:, None]).sum(0)
        centre /= np.linalg.norm(centre) or 1.0
        v = vectors[m].astype(np.float64)
        gram = v @ v.T
        sq = np.diag(gram)  # so that a member's distance to itself is exactly 0 and equal members tie exactly
        medoid = int(item_ids[m][np.argmin((sq[:, None] + sq[None, :] - 2 * gram).sum(1))])
        out.append(Interest(centre.astype(np.float32), medoid, float(weights[m].sum() / total), int(m.sum())))
    return sorted(out, key=lambda i: -i.importance)
