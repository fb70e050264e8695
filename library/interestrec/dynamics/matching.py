"""Matching clusters across consecutive windows: Hungarian on centroids + MONIC-style member overlap.

For clusters ``p`` (previous window) and ``c`` (current), ``overlap[p, c] = |p ∩ c| / |p|`` over the
users present in both windows. Each previous cluster is labelled

- ``survived``: its Hungarian partner (max centroid similarity) holds ≥ ``survive`` of its members —
  the partner inherits its stable id;
- ``split``: ≥ 2 current clusters each hold ≥ ``split`` of its members;
- ``absorbed``: a current cluster that another cluster survived into holds ≥ ``survive`` of its members;
- ``disappeared``: none of the above.

Current clusters without an inherited id are ``emerged`` (or ``split`` children, naming their parent)
and get fresh stable ids.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Transition:
    """The outcome of matching window ``t-1`` to window ``t``."""

    ids: np.ndarray  # stable id of each current cluster
    prev_labels: dict[int, str] = field(default_factory=dict)  # stable id of a previous cluster -> MONIC label
    curr_labels: dict[int, str] = field(default_factory=dict)  # stable id of a current cluster -> survived/split/emerged
    parents: dict[int, list[int]] = field(default_factory=dict)  # current stable id -> previous stable ids
    overlap: np.ndarray | None = None


def overlap_matrix(prev_users: np.ndarray, prev_labels: np.ndarray, curr_users: np.ndarray, curr_labels: np.ndarray,
                   kp: int, kc: int) -> tuple[np.ndarray, np.ndarray]:
    """Member counts ``|p ∩ c|`` over common users, and previous-cluster sizes among them.

    Shapes:
        returns ``(kp, kc)`` counts and ``(kp,)`` sizes.
    """
    common, ip, ic = np.intersect1d(prev_users, curr_users, return_indices=True)
    counts = np.zeros((kp, kc), np.int64)
    np.add.at(counts, (prev_labels[ip], curr_labels[ic]), 1)
    return counts, counts.sum(1)


def match_clusters(prev_ids: np.ndarray, prev_centroids: np.ndarray, prev_users: np.ndarray, prev_labels: np.ndarray,
                   curr_centroids: np.ndarray, curr_users: np.ndarray, curr_labels: np.ndarray, next_id: int,
                   survive: float = 0.7, split: float = 0.3) -> tuple[Transition, int]:
    """Give the current clusters stable ids and MONIC labels; returns the transition and the next free id."""
    from scipy.optimize import linear_sum_assignment

    kp, kc = len(prev_centroids), len(curr_centroids)
    counts, sizes = overlap_matrix(prev_users, prev_labels, curr_users, curr_labels, kp, kc)
    frac = counts / np.maximum(sizes[:, None], 1)
    a = prev_centroids / np.maximum(np.linalg.norm(prev_centroids, axis=1, keepdims=True), 1e-12)
    b = curr_centroids / np.maximum(np.linalg.norm(curr_centroids, axis=1, keepdims=True), 1e-12)
    rows, cols = linear_sum_assignment(-(a @ b.T))
    partner = dict(zip(rows.tolist(), cols.tolist()))

    ids = np.full(kc, -1, np.int64)
    t = Transition(ids=ids, overlap=frac)
    for p in range(kp):
        c = partner.get(p)
        if c is not None and frac[p, c] >= survive and ids[c] < 0:
            ids[c] = prev_ids[p]
            t.prev_labels[int(prev_ids[p])] = "survived"
    for p in range(kp):
        pid = int(prev_ids[p])
        if pid in t.prev_labels:
            continue
        children = np.flatnonzero(frac[p] >= split)
        strong = np.flatnonzero(frac[p] >= survive)
        if len(children) >= 2:
            t.prev_labels[pid] = "split"
        elif len(strong) and ids[strong[0]] >= 0:
            t.prev_labels[pid] = "absorbed"
        else:
            t.prev_labels[pid] = "disappeared"
    for c in range(kc):
        parents = [int(prev_ids[p]) for p in range(kp) if frac[p, c] >= split]
        if ids[c] >= 0:
            t.curr_labels[int(ids[c])] = "survived"
            t.parents[int(ids[c])] = sorted(set(parents) | {int(ids[c])})
            continue
        ids[c] = next_id
        next_id += 1
        split_parents = [p for p in parents if t.prev_labels.get(p) == "split"]
        t.curr_labels[int(ids[c])] = "split" if split_parents else "emerged"
        t.parents[int(ids[c])] = parents
    return t, next_id
