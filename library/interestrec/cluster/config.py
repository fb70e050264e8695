"""Cluster stage configuration."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ClusterConfig:
    """Distributed k-means over user interest vectors.

    Attributes:
        k: number of clusters, or ``"auto"`` to pick it from ``k_grid`` (elbow + silhouette).
        metric: ``euclidean`` or ``spherical``.
        init: ``k-means++`` or ``k-means||``.
        num_actors: k-means shard actors.
        backend: all-reduce backend, ``gloo`` (CPU) or ``nccl`` (GPU).
    """

    k: int | str = "auto"
    k_grid: tuple[int, ...] = (4, 6, 8, 10, 12, 16, 20)
    metric: str = "spherical"
    init: str = "k-means++"
    max_iter: int = 50
    tol: float = 1e-4
    num_actors: int = 2
    threads_per_actor: int = 1
    chunk_size: int = 16384
    backend: str = "gloo"
    silhouette_sample: int = 5000
