"""Drift between consecutive windows: centroid shift, membership stability, transitions, movers."""

from __future__ import annotations

import numpy as np


def centroid_shift(prev_ids: np.ndarray, prev_centroids: np.ndarray, curr_ids: np.ndarray, curr_centroids: np.ndarray,
                   metric: str = "spherical") -> float:
    """Mean distance between the centroids of clusters that kept their stable id (``1 - cos`` or L2).

    Returns ``nan`` when no cluster survived.
    """
    pos = {int(i): n for n, i in enumerate(prev_ids)}
    d = []
    for n, i in enumerate(curr_ids):
        if int(i) in pos:
            a, b = prev_centroids[pos[int(i)]], curr_centroids[n]
            if metric == "spherical":
                d.append(1.0 - float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-12)))
            else:
                d.append(float(np.linalg.norm(a - b)))
    return float(np.mean(d)) if d else float("nan")


def membership(prev_users: np.ndarray, prev_stable: np.ndarray, curr_users: np.ndarray, curr_stable: np.ndarray) -> dict:
    """Stability over users present in both windows.

    Returns ARI between the two labelings, the share of users whose stable cluster changed, the
    transition matrix (rows: previous stable ids, columns: current ones) and the common-user count.
    """
    from sklearn.metrics import adjusted_rand_score

    common, ip, ic = np.intersect1d(prev_users, curr_users, return_indices=True)
    a, b = prev_stable[ip], curr_stable[ic]
    rows, cols = np.unique(a), np.unique(b)
    mat = np.zeros((len(rows), len(cols)), np.int64)
    np.add.at(mat, (np.searchsorted(rows, a), np.searchsorted(cols, b)), 1)
    return {
        "common_users": int(len(common)),
        "ari": float(adjusted_rand_score(a, b)) if len(common) else float("nan"),
        "moved_share": float(np.mean(a != b)) if len(common) else float("nan"),
        "transition": {"from": rows.tolist(), "to": cols.tolist(), "counts": mat.tolist()},
    }
