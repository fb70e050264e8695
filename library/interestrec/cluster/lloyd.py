"""The Lloyd loop over :class:`~interestrec.cluster.shard.ClusterData` and the single-process :func:`kmeans`.

The loop only calls ``data.stats`` (global sums/counts/inertia), ``data.farthest`` and ``data.rows``; the
same code runs in one process (the reference) and inside every Ray actor of
:class:`~interestrec.cluster.distributed.DistributedKMeans`, where each call is an all-reduce, so all
actors hold identical centroids after every iteration.

Stopping: ``history[i]`` is the inertia of the centroids entering iteration ``i``; the loop stops after
iteration ``i`` when the centroids did not change (strict convergence), when
``|history[i-1] − history[i]| < tol · history[i-1]``, or at ``max_iter``. A final pass assigns every row
to the final centroids (labels, counts and ``inertia`` of the result).

Empty clusters are re-seeded deterministically: the ``j``-th empty cluster (in index order) moves to the
``j``-th farthest row from its centroid (ties by smaller global index).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from interestrec.cluster.assign import check_metric, normalize_rows, validate_vectors
from interestrec.cluster.seeding import INITS, initial_centroids
from interestrec.cluster.shard import ClusterData, Shard


@dataclass
class KMeansResult:
    """A k-means fit.

    Attributes:
        centroids: final centroids (unit rows for spherical).
        labels: nearest final centroid of every row, in the input order.
        inertia: sum of distances of rows to their final centroid (squared euclidean, or ``1 − cos``).
        n_iter: Lloyd iterations run.
        counts: rows per cluster at the final assignment.
        history: inertia entering each iteration.
        seconds_per_iter: wall seconds of each iteration (statistics + all-reduce + update).
        reduce_seconds: total seconds spent in all-reduce calls during the iterations.
        distances: each row's distance to its final centroid (filled by the distributed fit).
        ids: row ids from the input blocks' ``user_id``/``id`` column, when present.

    Shapes:
        centroids: ``(k, d)`` float32; labels: ``(n,)`` int32; counts: ``(k,)`` int64.
    """

    centroids: np.ndarray
    labels: np.ndarray
    inertia: float
    n_iter: int
    counts: np.ndarray
    history: list[float] = field(default_factory=list)
    seconds_per_iter: list[float] = field(default_factory=list)
    reduce_seconds: float = 0.0
    distances: np.ndarray | None = None
    ids: np.ndarray | None = None


@dataclass
class LoopState:
    """What a checkpoint holds: the centroids after ``n_iter`` iterations and the inertia history.

    Shapes:
        centroids: ``(k, d)`` float32.
    """

    centroids: np.ndarray
    n_iter: int = 0
    history: list[float] = field(default_factory=list)
    done: bool = False


def check_params(k: int, metric: str, init: str, max_iter: int, tol: float) -> None:
    """Raise ``ValueError`` for invalid k-means parameters (before any work starts)."""
    check_metric(metric)
    if init not in INITS:
        raise ValueError(f"unknown init '{init}'; expected one of {INITS}")
    if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    if max_iter < 1:
        raise ValueError(f"max_iter must be ≥ 1, got {max_iter}")
    if not np.isfinite(tol) or tol < 0:
        raise ValueError(f"tol must be a finite number ≥ 0, got {tol}")


def check_init_centroids(init_centroids: np.ndarray, k: int, d: int, metric: str) -> np.ndarray:
    """Validate user-given initial centroids against ``k`` and the data dimension ``d``.

    Shapes:
        init_centroids: ``(k, d)`` → ``(k, d)`` float32 (normalised for spherical).
    """
    c = validate_vectors(init_centroids, "init_centroids", metric)
    if c.shape[1] != d:
        raise ValueError(f"dimension mismatch: data has d={d}, init_centroids have d={c.shape[1]}")
    if c.shape[0] != k:
        raise ValueError(f"init_centroids has {c.shape[0]} rows but k={k}")
    return normalize_rows(c) if metric == "spherical" else c


def update_centroids(data: ClusterData, c: np.ndarray, sums: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """New centroids from global sums and counts; empty clusters re-seeded from the farthest rows.

    Shapes:
        c, sums: ``(k, d)``; counts: ``(k,)`` → ``(k, d)`` float32.
    """
    new = c.astype(np.float32).copy()
    nz = counts > 0
    new[nz] = (sums[nz] / counts[nz, None]).astype(np.float32)
    empty = np.flatnonzero(~nz)
    if empty.size:
        far = data.farthest(int(empty.size))
        rows = data.rows(far)
        new[empty[: len(rows)]] = rows
    if data.metric == "spherical":
        new = normalize_rows(new)
    return new


def lloyd(
    data: ClusterData,
    state: LoopState,
    max_iter: int = 50,
    tol: float = 1e-4,
    on_iteration: Callable[[LoopState], None] | None = None,
) -> tuple[LoopState, list[float]]:
    """Run Lloyd iterations from ``state`` (fresh or resumed from a checkpoint) until a stop rule fires.

    Returns the final state and the wall seconds of each iteration run here.
    """
    c = state.centroids
    history = list(state.history)
    times: list[float] = []
    it = state.n_iter
    done = state.done
    while not done and it < max_iter:
        t0 = time.perf_counter()
        st = data.stats(c, keep_labels=True)
        history.append(st.inertia)
        new = update_centroids(data, c, st.sums, st.counts)
        it += 1
        unchanged = np.array_equal(new, c)
        c = new
        small = len(history) >= 2 and abs(history[-2] - history[-1]) < tol * history[-2]
        done = unchanged or small or it >= max_iter
        times.append(time.perf_counter() - t0)
        if on_iteration is not None:
            on_iteration(LoopState(c, it, list(history), done))
    return LoopState(c, it, history, True), times


def fit_data(
    data: ClusterData,
    k: int,
    *,
    init: str = "k-means++",
    init_centroids: np.ndarray | None = None,
    max_iter: int = 50,
    tol: float = 1e-4,
    seed: int = 0,
    resume: LoopState | None = None,
    on_iteration: Callable[[LoopState], None] | None = None,
) -> tuple[LoopState, np.ndarray, float, list[float], float]:
    """Initialise (unless resuming), iterate and do the final assignment pass on ``data``.

    The shard keeps its rows' final labels and distances. Returns the final state, the final counts,
    the final inertia, per-iteration seconds and the all-reduce seconds spent in the iterations.
    """
    if resume is None:
        c = init_centroids if init_centroids is not None else initial_centroids(data, k, init, seed)
        resume = LoopState(np.ascontiguousarray(c, dtype=np.float32))
        if on_iteration is not None:
            on_iteration(resume)
    r0 = data.t_reduce
    state, times = lloyd(data, resume, max_iter, tol, on_iteration)
    reduce_s = data.t_reduce - r0
    final = data.stats(state.centroids, keep_labels=True)
    return state, final.counts, final.inertia, times, reduce_s


def kmeans(
    x: np.ndarray,
    k: int,
    *,
    metric: str = "euclidean",
    init: str = "k-means++",
    init_centroids: np.ndarray | None = None,
    max_iter: int = 50,
    tol: float = 1e-4,
    seed: int = 0,
    chunk_size: int = 16384,
) -> KMeansResult:
    """Single-process reference k-means: the distributed loop over one in-memory shard.

    Args:
        x: rows to cluster.
        k: number of clusters (``1 ≤ k ≤ n``).
        metric: ``euclidean`` or ``spherical`` (cosine; rows and centroids L2-normalised).
        init: ``k-means++`` (on a seeded sample) or ``k-means||``; ignored when ``init_centroids`` given.
        init_centroids: start from these centroids.
        max_iter, tol: stop rules (see the module docstring).
        seed: seed of the initialisation.
        chunk_size: rows per GEMM.

    Raises:
        ValueError: NaN/inf rows, ``k > n``, a dimension mismatch or an unknown option.

    Shapes:
        x: ``(n, d)``; init_centroids: ``(k, d)``.
    """
    check_params(k, metric, init, max_iter, tol)
    x = validate_vectors(x, "x", metric)
    if k > x.shape[0]:
        raise ValueError(f"k={k} is larger than the number of rows n={x.shape[0]}")
    c0 = check_init_centroids(init_centroids, k, x.shape[1], metric) if init_centroids is not None else None
    data = ClusterData(Shard(x, 0, metric, chunk_size))
    state, counts, inertia, times, reduce_s = fit_data(
        data, k, init=init, init_centroids=c0, max_iter=max_iter, tol=tol, seed=seed
    )
    return KMeansResult(
        state.centroids, data.shard.labels.copy(), inertia, state.n_iter, counts, state.history, times, reduce_s,
        data.shard.dist.copy(),
    )
