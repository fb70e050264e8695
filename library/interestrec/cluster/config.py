"""Cluster stage configuration."""

from __future__ import annotations

from dataclasses import dataclass

from interestrec.configcheck import check_config


@dataclass(frozen=True)
class ClusterConfig:
    """Distributed k-means over user interest vectors.

    Attributes:
        k: number of clusters, or ``"auto"`` to pick it from ``k_grid`` (elbow + silhouette).
        k_grid: candidate K values for ``k: auto`` (values ≥ the number of users are dropped).
        metric: ``euclidean`` or ``spherical``.
        init: ``k-means++`` or ``k-means||``.
        max_iter: Lloyd iteration cap.
        tol: stop when the relative inertia change falls below it.
        num_actors: k-means shard actors.
        threads_per_actor: BLAS threads per actor.
        chunk_size: rows per assignment GEMM.
        backend: all-reduce backend; ``gloo`` (CPU) is the only one.
        silhouette_sample: rows (seeded sample) used for K selection, silhouette and the other metrics.
        scheduling: Ray scheduling strategy for the actors (``""`` = default, ``"SPREAD"`` = all nodes).
        alternatives: comparison methods fitted on a sample: any of ``ward``, ``dbscan``, ``gmm``.
        alternatives_sample: rows used by the alternatives.
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
    scheduling: str = ""
    alternatives: tuple[str, ...] = ()
    alternatives_sample: int = 2000

    def __post_init__(self) -> None:
        check_config(self, "cluster", ge={"max_iter": 1, "tol": 0, "num_actors": 1, "threads_per_actor": 1,
                                          "chunk_size": 1, "silhouette_sample": 2, "alternatives_sample": 2})
        if not (self.k == "auto" or (isinstance(self.k, int) and not isinstance(self.k, bool) and self.k >= 1)):
            raise ValueError(f"cluster.k must be a positive integer or 'auto', got {self.k!r}")
        if self.metric not in ("euclidean", "spherical"):
            raise ValueError(f"cluster.metric must be 'euclidean' or 'spherical', got {self.metric!r}")
        if self.init not in ("k-means++", "k-means||"):
            raise ValueError(f"cluster.init must be 'k-means++' or 'k-means||', got {self.init!r}")
        if self.backend != "gloo":
            raise ValueError(f"cluster.backend must be 'gloo', got {self.backend!r}")
        bad = sorted(set(self.alternatives) - {"ward", "dbscan", "gmm"})
        if bad:
            raise ValueError(f"cluster.alternatives has unknown method(s) {bad}; choose from ward, dbscan, gmm")
        if any(not isinstance(k, int) or k < 2 for k in self.k_grid):
            raise ValueError(f"cluster.k_grid must hold integers ≥ 2, got {self.k_grid}")
