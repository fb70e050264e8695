"""Recommender / Serve configuration."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ServeConfig:
    """Ray Serve app settings.

    Attributes:
        host / port: HTTP bind address (127.0.0.1 unless configured otherwise).
        token: bearer token required by ``POST /events`` (``None`` = open).
        recommender_replicas / encoder_replicas: initial replica counts (autoscaling bounds below).
    """

    host: str = "127.0.0.1"
    port: int = 8000
    token: str | None = None
    recommender_replicas: int = 1
    max_recommender_replicas: int = 2
    encoder_replicas: int = 1
    half_life_days: float = 180.0
