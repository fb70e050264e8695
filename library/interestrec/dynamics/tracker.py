"""Tracking interest clusters through time: warm-started clustering + matching + drift, as one pure call."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from interestrec.dynamics.drift import centroid_shift, membership
from interestrec.dynamics.matching import Transition, match_clusters
from interestrec.dynamics.warmstart import WindowClusters, cluster_windows


@dataclass
class Dynamics:
    """Clusters per window with stable ids, the transitions between windows and drift metrics.

    Attributes:
        windows: per-window clustering (local labels).
        stable_ids: per window, the stable id of each local cluster. Shapes ``(k_w,)``.
        transitions: ``transitions[i]`` matches window ``i`` to ``i + 1``.
        drift: per window ``i + 1``: centroid_shift, ari, moved_share, transition, common_users.
    """

    windows: list[WindowClusters]
    stable_ids: list[np.ndarray]
    transitions: list[Transition] = field(default_factory=list)
    drift: list[dict] = field(default_factory=list)

    def user_stable(self, i: int) -> np.ndarray:
        """Stable cluster id of each user of window ``i``."""
        return self.stable_ids[i][self.windows[i].labels]


def track(per_window: list[tuple[int, np.ndarray, np.ndarray]], k: int, init_centroids: np.ndarray | None = None,
          mode: str = "warm", decay: float = 0.5, metric: str = "spherical", survive: float = 0.7, split: float = 0.3,
          seed: int = 0, fit: Callable | None = None) -> Dynamics:
    """Cluster every window (warm-started), give clusters stable ids, and measure drift.

    Args:
        per_window: ``(window, user_ids, vectors)`` in time order.
    """
    wins = cluster_windows(per_window, k, init_centroids, mode, decay, metric, seed, fit)
    dyn = Dynamics(windows=wins, stable_ids=[np.arange(len(wins[0].centroids), dtype=np.int64)] if wins else [])
    next_id = len(wins[0].centroids) if wins else 0
    for prev, curr in zip(wins[:-1], wins[1:]):
        pid = dyn.stable_ids[-1]
        t, next_id = match_clusters(pid, prev.centroids, prev.user_ids, prev.labels, curr.centroids, curr.user_ids,
                                    curr.labels, next_id, survive, split)
        dyn.transitions.append(t)
        dyn.stable_ids.append(t.ids)
        m = membership(prev.user_ids, pid[prev.labels], curr.user_ids, t.ids[curr.labels])
        m["centroid_shift"] = centroid_shift(pid, prev.centroids, t.ids, curr.centroids, metric)
        m["labels"] = {"previous": dict(sorted(t.prev_labels.items())), "current": dict(sorted(t.curr_labels.items()))}
        dyn.drift.append(m)
    return dyn
