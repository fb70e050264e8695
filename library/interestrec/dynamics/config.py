"""Dynamics stage configuration."""

from __future__ import annotations

from dataclasses import dataclass

from interestrec.configcheck import check_config


@dataclass(frozen=True)
class DynamicsConfig:
    """Warm-started clustering per time window, cluster matching and drift reporting.

    Attributes:
        mode: ``warm`` (Lloyd warm-started from the previous centroids) or ``streaming`` (decayed update).
            ``streaming`` reads every window's vectors into the driver (the decayed update runs there);
            ``warm`` reads only the windows clustered in the driver.
        decay: streaming decay factor per window (1.0 = no forgetting).
        survive_threshold / split_threshold: MONIC member-overlap thresholds.
        min_events: users with fewer events in the lookback are left out of that window.
        distributed_min_users: windows this large are clustered with the distributed k-means (Ray
            actors, started once for all windows); in ``warm`` mode their vectors go from
            ``encode/users.parquet`` to the actors (one read task per file, through the object store)
            and never reach the driver. Smaller
            windows are clustered in the driver with the single-process reference (same core, no actor
            start-up).
    """

    mode: str = "warm"
    decay: float = 0.5
    survive_threshold: float = 0.7
    split_threshold: float = 0.3
    min_events: int = 3
    plots: bool = True
    distributed_min_users: int = 20000

    def __post_init__(self) -> None:
        check_config(self, "dynamics", ge={"min_events": 1, "distributed_min_users": 1, "decay": 0}, le={"decay": 1, "survive_threshold": 1, "split_threshold": 1},
                     choices={"mode": ("warm", "streaming")})
        if not 0 <= self.split_threshold <= self.survive_threshold:
            raise ValueError("dynamics.split_threshold must be in [0, dynamics.survive_threshold]")
