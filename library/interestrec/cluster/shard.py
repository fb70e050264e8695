"""The tiny data interface the k-means loop is written against (cf. faiss ``contrib/clustering.py``).

:class:`Shard` owns one contiguous slice ``[offset, offset + n)`` of the global row order as float32
plus its squared norms. :class:`ClusterData` combines a shard with a :class:`Collective`; every method
returns *global* results (summed over all shards), so the Lloyd loop and the initialisers do not know
whether they run in one process (:class:`LocalCollective`) or in ``world`` Ray actors joined by an
all-reduce. All reductions are float64 sums of per-shard partials, or gathers where exactly one shard
contributes each row, so results do not depend on how the rows are split.

Memory per row held by a shard: ``4·d`` (vector) + 4 (‖x‖²) + 4 (label) + 4 (distance) bytes; k-means‖
initialisation adds 4 more while it runs.
"""

from __future__ import annotations

import time
from typing import Protocol

import numpy as np

from interestrec.cluster.assign import PartialStats, normalize_rows, partial_stats, squared_norms


class Collective(Protocol):
    """Sum / gather / broadcast across the processes that each hold one shard."""

    rank: int
    world: int

    def allreduce(self, a: np.ndarray) -> np.ndarray:
        """Element-wise sum over all processes (same shape and dtype everywhere)."""

    def allgather(self, a: np.ndarray) -> list[np.ndarray]:
        """Every process's array (same shape everywhere), in rank order."""

    def broadcast(self, a: np.ndarray) -> np.ndarray:
        """Rank 0's array, everywhere."""


class LocalCollective:
    """The one-process collective: identity operations (used by the reference :func:`kmeans`)."""

    rank = 0
    world = 1

    def allreduce(self, a: np.ndarray) -> np.ndarray:
        return a

    def allgather(self, a: np.ndarray) -> list[np.ndarray]:
        return [a]

    def broadcast(self, a: np.ndarray) -> np.ndarray:
        return a


class Shard:
    """One process's rows, in float32, with their global offset.

    Args:
        x: the rows (validated float32).
        offset: global index of the first row.
        metric: ``spherical`` normalises the rows once, in place of the raw copy.
        chunk_size: rows per GEMM.

    Shapes:
        x: ``(n, d)``.
    """

    def __init__(self, x: np.ndarray, offset: int = 0, metric: str = "euclidean", chunk_size: int = 16384) -> None:
        self.x = normalize_rows(x) if metric == "spherical" else np.ascontiguousarray(x, dtype=np.float32)
        if not self.x.flags.writeable:  # zero-copy Arrow/object-store memory: take one private copy
            self.x = self.x.copy()
        self.offset = int(offset)
        self.metric = metric
        self.chunk_size = int(chunk_size)
        self.xsq = squared_norms(self.x)
        self.labels = np.zeros(self.x.shape[0], dtype=np.int32)
        self.dist = np.zeros(self.x.shape[0], dtype=np.float32)

    @property
    def n(self) -> int:
        return self.x.shape[0]

    def stats(self, centroids: np.ndarray, keep_labels: bool = False) -> PartialStats:
        """Partial statistics of this shard; ``keep_labels`` stores labels/distances in the shard."""
        return partial_stats(
            self.x, self.xsq, centroids, self.metric, self.chunk_size,
            self.labels if keep_labels else None, self.dist if keep_labels else None,
        )

    def owned(self, global_idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Positions in ``global_idx`` this shard owns and their local row numbers."""
        local = np.asarray(global_idx, dtype=np.int64) - self.offset
        pos = np.flatnonzero((local >= 0) & (local < self.n))
        return pos, local[pos]


class ClusterData:
    """Global view of the sharded rows: what the Lloyd loop and the initialisers call.

    Attributes:
        t_compute, t_reduce: seconds spent in local statistics and in all-reduce calls (for benchmarks).
    """

    def __init__(self, shard: Shard, comm: Collective | None = None) -> None:
        self.shard = shard
        self.comm = comm or LocalCollective()
        self.t_compute = 0.0
        self.t_reduce = 0.0
        c = self._allreduce(np.array([shard.n], dtype=np.int64))
        self.count = int(c[0])
        self.dim = int(shard.x.shape[1])

    @property
    def metric(self) -> str:
        return self.shard.metric

    @property
    def rank(self) -> int:
        return self.comm.rank

    def _allreduce(self, a: np.ndarray) -> np.ndarray:
        t = time.perf_counter()
        out = self.comm.allreduce(a)
        self.t_reduce += time.perf_counter() - t
        return out

    def stats(self, centroids: np.ndarray, keep_labels: bool = False) -> PartialStats:
        """Global sums ``(K, d)``, counts ``(K,)`` and inertia for ``centroids`` (one all-reduce)."""
        t = time.perf_counter()
        p = self.shard.stats(centroids, keep_labels)
        self.t_compute += time.perf_counter() - t
        k, d = p.sums.shape
        packed = np.concatenate([p.sums.ravel(), p.counts.astype(np.float64), [p.inertia]])
        packed = self._allreduce(packed)
        sums = packed[: k * d].reshape(k, d)
        counts = np.rint(packed[k * d : k * d + k]).astype(np.int64)
        return PartialStats(sums, counts, float(packed[-1]))

    def rows(self, global_idx: np.ndarray) -> np.ndarray:
        """The rows with the given global indices, in that order (each filled by its owner, summed).

        Shapes:
            global_idx: ``(m,)`` → ``(m, d)`` float32.
        """
        out = np.zeros((len(global_idx), self.dim), dtype=np.float32)
        pos, local = self.shard.owned(global_idx)
        out[pos] = self.shard.x[local]
        return self._allreduce(out)

    def farthest(self, m: int) -> np.ndarray:
        """Global indices of the ``m`` rows farthest from their centroid at the last ``keep_labels`` pass.

        Ties are broken by the smaller global index, so the choice does not depend on the sharding.
        """
        dist = self.shard.dist
        m_local = min(m, self.shard.n)
        top = np.lexsort((np.arange(self.shard.n), -dist.astype(np.float64)))[:m_local]
        cand = np.full((m, 2), [-1.0, -1.0])
        cand[:m_local, 0] = dist[top]
        cand[:m_local, 1] = top + self.shard.offset
        allc = np.concatenate(self.comm.allgather(cand))
        allc = allc[allc[:, 1] >= 0]
        order = np.lexsort((allc[:, 1], -allc[:, 0]))[:m]
        return allc[order, 1].astype(np.int64)

    def min_dist(self, centers: np.ndarray) -> np.ndarray:
        """This shard's distance of each row to its nearest row of ``centers`` (local, not reduced)."""
        lab = np.empty(self.shard.n, dtype=np.int32)
        dist = np.empty(self.shard.n, dtype=np.float32)
        partial_stats(self.shard.x, self.shard.xsq, centers, self.metric, self.shard.chunk_size, lab, dist)
        return dist

    def local_rows_where(self, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Gather the rows of every shard selected by its local ``mask``, ordered by global index.

        Returns the global indices and rows. Two all-reduces: counts per rank, then the rows.
        """
        sel = np.flatnonzero(mask)
        counts = np.zeros(self.comm.world, dtype=np.int64)
        counts[self.rank] = sel.size
        counts = self._allreduce(counts)
        start = int(counts[: self.rank].sum())
        total = int(counts.sum())
        rows = np.zeros((total, self.dim), dtype=np.float32)
        idx = np.zeros(total, dtype=np.int64)
        rows[start : start + sel.size] = self.shard.x[sel]
        idx[start : start + sel.size] = sel + self.shard.offset
        return self._allreduce(idx), self._allreduce(rows)

    def uniform(self, seed: tuple[int, ...]) -> np.ndarray:
        """Seeded uniforms for this shard's rows that depend only on the global row index."""
        u = np.random.default_rng(list(seed)).random(self.count)
        return u[self.shard.offset : self.shard.offset + self.shard.n]

    def broadcast(self, a: np.ndarray) -> np.ndarray:
        """Rank 0's value of ``a`` on every process."""
        t = time.perf_counter()
        out = self.comm.broadcast(a)
        self.t_reduce += time.perf_counter() - t
        return out

    def allreduce(self, a: np.ndarray) -> np.ndarray:
        """Public sum across processes (timed)."""
        return self._allreduce(a)
