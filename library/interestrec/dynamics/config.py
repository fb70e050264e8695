"""Dynamics stage configuration."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DynamicsConfig:
    """Warm-started clustering per time window, cluster matching and drift reporting.

    Attributes:
        mode: ``warm`` (Lloyd warm-started from the previous centroids) or ``streaming`` (decayed update).
        decay: streaming decay factor per window (1.0 = no forgetting).
        survive_threshold / split_threshold: MONIC member-overlap thresholds.
        min_events: users with fewer events in the lookback are left out of that window.
        distributed_min_users: windows this large are clustered with the distributed k-means (Ray
            actors); smaller ones with the single-process reference (same core, no actor start-up).
    """

    mode: str = "warm"
    decay: float = 0.5
    survive_threshold: float = 0.7
    split_threshold: float = 0.3
    min_events: int = 3
    plots: bool = True
    distributed_min_users: int = 20000
