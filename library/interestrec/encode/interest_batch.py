"""Every user's interests in one call: the fast path of :func:`interestrec.encode.interests.user_interests`.

Same definition as the per-user reference (Ward linkage of the user's newest ``max_items`` item vectors,
cut at ``max_distance``, at most ``max_interests`` groups; weighted-mean vector, medoid item,
decayed-weight importance, size; most important first), computed so that only the linkage itself runs
per user:

- the linkage runs scipy's own C routines (``nn_chain`` with Ward, then ``cluster_dist`` /
  ``cluster_maxclust_dist``, exactly what ``linkage``/``fcluster`` call) on distances from one Gram
  matrix, without the per-call validation that costs more than the clustering at ~50 items;
- vectors, importances, sizes and medoids of all groups of all users are segment sums over the item
  vectors (``Σ_j ||v_i − v_j||² = m·||v_i||² + Σ_j ||v_j||² − 2 v_i·Σ_j v_j``);
- the result stays in flat arrays (:class:`InterestBatch`) and becomes the Arrow ``interests`` column
  without a Python object per interest.

Tested equal to the reference (``tests/test_encode_interests.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

WARD = 5  # scipy.cluster.hierarchy._LINKAGE_METHODS["ward"], checked in the tests
GRAM_ITEMS = 4096  # catalogues up to this size share one item distance matrix (≤ 128 MiB)


@dataclass(frozen=True)
class InterestBatch:
    """Interests of ``u`` users, ``g`` interests in all, user by user, most important first.

    Shapes:
        offsets: ``(u + 1,)`` — user ``i``'s interests are rows ``offsets[i]:offsets[i + 1]``;
        vectors: ``(g, d)`` float32 unit rows; medoid_item_id: ``(g,)`` int64; importance: ``(g,)`` float32;
        size: ``(g,)`` int32.
    """

    offsets: np.ndarray
    vectors: np.ndarray
    medoid_item_id: np.ndarray
    importance: np.ndarray
    size: np.ndarray

    def to_arrow(self):
        """The ``interests`` column: ``list<struct<vector: list<float32>, medoid_item_id, importance, size>>``."""
        import pyarrow as pa

        g, d = self.vectors.shape
        vec = pa.ListArray.from_arrays(pa.array(np.arange(g + 1, dtype=np.int32) * d),
                                       pa.array(np.ascontiguousarray(self.vectors, np.float32).reshape(-1)))
        rows = pa.StructArray.from_arrays(
            [vec, pa.array(self.medoid_item_id, pa.int64()), pa.array(self.importance, pa.float32()),
             pa.array(self.size, pa.int32())], names=["vector", "medoid_item_id", "importance", "size"])
        return pa.ListArray.from_arrays(pa.array(self.offsets.astype(np.int32)), rows)


def _sq_distances(gram: np.ndarray) -> np.ndarray:
    """Squared distances from a Gram matrix: exactly 0 on the diagonal and exactly symmetric.

    Shapes:
        gram: ``(n, n)`` float64; returns ``(n, n)``.
    """
    sq = np.diag(gram)
    return sq[:, None] + sq[None, :] - 2.0 * gram


def _ward(d2: np.ndarray, max_interests: int, max_distance: float) -> tuple[np.ndarray, np.ndarray]:
    """One user's 0-based Ward labels (numbered as ``fcluster`` numbers them) and medoid scores.

    The score of a row is its summed squared distance to the rows of its own group.

    Shapes:
        d2: ``(n, n)`` squared distances of the user's item vectors (:func:`_sq_distances`);
        returns two ``(n,)`` arrays.
    """
    from scipy.cluster import _hierarchy
    from scipy.spatial.distance import squareform

    n = len(d2)
    t = np.zeros(n, dtype="i")
    if max_interests > 1:  # squareform: the condensed (row-major upper triangle) form pdist would give
        z = _hierarchy.nn_chain(np.sqrt(np.maximum(squareform(d2, checks=False), 0.0)), n, WARD)
        _hierarchy.cluster_dist(z, t, float(max_distance), int(n))
        if t.max() > max_interests:
            _hierarchy.cluster_maxclust_dist(z, t, int(n), int(max_interests))
        t -= 1
    same = t[:, None] == t[None, :]
    return t.astype(np.int64), np.where(same, d2, 0.0).sum(1)


def batch_interests(user_idx: np.ndarray, timestamps: np.ndarray, item_idx: np.ndarray, item_ids: np.ndarray,
                    item_vectors: np.ndarray, weights: np.ndarray, n_users: int, max_interests: int = 4,
                    max_items: int = 200, max_distance: float = 1.5) -> InterestBatch:
    """Interests of every user from their events (any order; each user's newest ``max_items`` count).

    Args:
        user_idx: each event's user (``0 … n_users − 1``). timestamps: event times (ties keep input order).
        item_idx: each event's row of ``item_vectors``; item_ids: the catalog ids of those rows.
        weights: decayed event weights.

    Shapes:
        user_idx, timestamps, item_idx, weights: ``(n,)``; item_ids: ``(n_items,)``;
        item_vectors: ``(n_items, d)``.
    """
    import scipy.sparse as sp

    d = item_vectors.shape[1]
    empty = InterestBatch(np.zeros(n_users + 1, np.int64), np.zeros((0, d), np.float32), np.zeros(0, np.int64),
                          np.zeros(0, np.float32), np.zeros(0, np.int32))
    if len(user_idx) == 0 or max_interests <= 0:
        return empty
    order = np.lexsort((timestamps, user_idx))  # by user, oldest first (stable: ties keep input order)
    u = np.asarray(user_idx, np.int64)[order]
    counts = np.bincount(u, minlength=n_users)
    starts = np.concatenate([[0], np.cumsum(counts)])
    rank_from_end = starts[u + 1] - np.arange(len(u)) - 1
    keep = rank_from_end < max_items  # the newest max_items events of each user
    order, u = order[keep], u[keep]
    items = np.asarray(item_idx, np.int64)[order]
    w = np.asarray(weights, np.float64)[order]
    counts = np.bincount(u, minlength=n_users)
    starts = np.concatenate([[0], np.cumsum(counts)])

    vec64 = np.asarray(item_vectors, np.float64)
    full = _sq_distances(vec64 @ vec64.T) if len(vec64) <= GRAM_ITEMS else None  # small catalogues: one for all
    labels = np.zeros(len(u), np.int64)
    score = np.zeros(len(u))
    for i in np.flatnonzero(counts >= 2).tolist():
        s, e = starts[i], starts[i + 1]
        it = items[s:e]
        d2 = full[np.ix_(it, it)] if full is not None else _sq_distances(vec64[it] @ vec64[it].T)
        labels[s:e], score[s:e] = _ward(d2, max_interests, max_distance)

    # groups = (user, label) pairs, numbered user by user in label order (the reference's np.unique order)
    key = u * (max_interests + 1) + labels
    groups, g = np.unique(key, return_inverse=True)
    g = g.reshape(-1)
    n_groups = len(groups)
    g_user = groups // (max_interests + 1)
    size = np.bincount(g, minlength=n_groups)
    wsum = np.bincount(g, weights=w, minlength=n_groups)
    total = np.bincount(u, weights=w, minlength=n_users)
    total = np.where(total != 0, total, 1.0)
    importance = wsum / total[g_user]

    cw = np.where(wsum[g] > 0, w, 1.0)  # a group without weight is an unweighted mean
    shape = (n_groups, len(item_vectors))
    centre = np.asarray(sp.csr_matrix((cw, (g, items)), shape=shape) @ vec64)
    norm = np.sqrt(np.einsum("ij,ij->i", centre, centre))[:, None]
    centre = centre / np.where(norm != 0, norm, 1.0)

    best = np.lexsort((np.arange(len(g)), score, g))  # per group: lowest score, then earliest event
    first = np.concatenate([[True], g[best][1:] != g[best][:-1]])
    medoid = np.asarray(item_ids, np.int64)[items[best[first]]]

    # most important first within each user (stable: ties keep label order)
    out = np.lexsort((np.arange(n_groups), -importance, g_user))
    per_user = np.bincount(g_user, minlength=n_users)
    return InterestBatch(np.concatenate([[0], np.cumsum(per_user)]), centre[out].astype(np.float32), medoid[out],
                         importance[out].astype(np.float32), size[out].astype(np.int32))
