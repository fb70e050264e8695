"""A small vectorised temporal neighbour sampler over CSR, for mini-batch training without ``pyg-lib``.

PyG's ``LinkNeighborLoader`` needs ``pyg-lib`` (or ``torch-sparse``) for its sampler, which PyPI does not
carry; :class:`TemporalNeighborSampler` does the same job for heterogeneous graphs in numpy:

- each seed (a supervision edge's user, positive and negative items) roots its own tree (PyG's
  ``disjoint=True``), so every tree carries its seed's supervision time;
- per layer and relation, every frontier node draws at most ``fanout[layer]`` in-neighbours uniformly
  without replacement;
- an edge with a ``time`` attribute is eligible only when it is strictly earlier than the tree's seed
  time — the supervision edge itself and everything after it are never seen (untimed relations such as
  item→genre are static and always eligible).

The result is a subgraph in local indices with ``n_id`` (global node ids) per type, ready for
``GraphRecommender(x_dict, edge_index_dict, n_id_dict)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class RelationCSR:
    """In-neighbours of every destination node of one relation, sorted by time within each row.

    Shapes:
        indptr: ``(n_dst + 1,)``; src / time / edge_id: ``(e,)`` (``time`` is ``None`` for static relations).
    """

    indptr: np.ndarray
    src: np.ndarray
    time: np.ndarray | None
    edge_id: np.ndarray


def relation_csr(edge_index: np.ndarray, num_dst: int, time: np.ndarray | None = None) -> RelationCSR:
    """CSR over destinations of a ``(2, e)`` edge index, rows sorted by ``time`` (then source)."""
    src, dst = np.asarray(edge_index[0], np.int64), np.asarray(edge_index[1], np.int64)
    keys = (src, time, dst) if time is not None else (src, dst)
    order = np.lexsort(keys)
    counts = np.bincount(dst, minlength=num_dst)
    indptr = np.r_[0, np.cumsum(counts)].astype(np.int64)
    return RelationCSR(indptr, src[order], None if time is None else np.asarray(time, np.int64)[order], order)


def _eligible_end(csr: RelationCSR, nodes: np.ndarray, before: np.ndarray) -> np.ndarray:
    """Per node: end of the prefix of its row whose edges are strictly earlier than ``before``."""
    start, end = csr.indptr[nodes], csr.indptr[nodes + 1]
    if csr.time is None or len(nodes) == 0:
        return end
    # binary search inside each row, all rows at once
    lo, hi = start.copy(), end.copy()
    while True:
        active = lo < hi
        if not active.any():
            return lo
        mid = (lo + hi) // 2
        t = csr.time[np.minimum(mid, len(csr.time) - 1)]
        go_right = active & (t < before)
        lo = np.where(go_right, mid + 1, lo)
        hi = np.where(active & ~go_right, mid, hi)


def sample_rows(csr: RelationCSR, nodes: np.ndarray, before: np.ndarray | None, k: int,
                rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Up to ``k`` eligible in-neighbours per node, uniformly without replacement.

    Args:
        nodes: destination nodes; before: their seed times (``None`` = no time limit).

    Shapes:
        nodes, before: ``(n,)``; returns ``(owner, position)`` of shape ``(m,)`` each: the index into
        ``nodes`` that drew the neighbour and the neighbour's position in ``csr.src``.
    """
    nodes = np.asarray(nodes, np.int64)
    start = csr.indptr[nodes]
    end = csr.indptr[nodes + 1] if before is None else _eligible_end(csr, nodes, np.asarray(before, np.int64))
    cnt = end - start
    total = int(cnt.sum())
    if total == 0 or k <= 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    owner = np.repeat(np.arange(len(nodes)), cnt)
    offset = np.arange(total) - np.repeat(np.cumsum(cnt) - cnt, cnt)
    pos = np.repeat(start, cnt) + offset
    # a random key per candidate; keep the k smallest keys of every row (= k distinct uniform draws)
    order = np.lexsort((rng.random(total), owner))
    owner, pos = owner[order], pos[order]
    rank = np.arange(total) - np.repeat(np.cumsum(cnt) - cnt, cnt)
    keep = rank < k
    return owner[keep], pos[keep]


@dataclass
class Subgraph:
    """A sampled subgraph in local indices.

    Attributes:
        n_id: global node id per local node, per type. seed_time: the seed time of each node's tree.
        edge_index: ``(2, e)`` local edges per relation. edge_time: each sampled edge's time (relations
            with a time attribute). seeds: local indices of the seed nodes per type, in seed order.
    """

    n_id: dict[str, np.ndarray]
    seed_time: dict[str, np.ndarray]
    edge_index: dict[tuple[str, str, str], np.ndarray]
    edge_time: dict[tuple[str, str, str], np.ndarray]
    seeds: dict[str, np.ndarray]


class TemporalNeighborSampler:
    """Disjoint temporal neighbour sampling on a ``HeteroData`` (see the module docstring).

    Args:
        graph: the knowledge graph; relations with a ``time`` attribute are filtered by time.
        fanout: neighbours per node, relation and layer (``fanout[0]`` for the seeds' own neighbours).
    """

    def __init__(self, graph, fanout: tuple[int, ...]):
        self.fanout = tuple(int(f) for f in fanout)
        self.num_nodes = {t: int(graph[t].num_nodes) for t in graph.node_types}
        self.csr: dict[tuple[str, str, str], RelationCSR] = {}
        for et in graph.edge_types:
            store = graph[et]
            time = store["time"].numpy() if "time" in store else None
            self.csr[et] = relation_csr(store.edge_index.numpy(), self.num_nodes[et[2]], time)

    def sample(self, seeds: dict[str, tuple[np.ndarray, np.ndarray]], rng: np.random.Generator) -> Subgraph:
        """Sample ``len(fanout)`` hops around the seeds.

        Args:
            seeds: per node type, ``(global ids, seed times)`` arrays of equal length.
        """
        n_id = {t: [] for t in self.num_nodes}
        s_time = {t: [] for t in self.num_nodes}
        size = dict.fromkeys(self.num_nodes, 0)
        edges: dict[tuple[str, str, str], list[np.ndarray]] = {et: [] for et in self.csr}
        e_time: dict[tuple[str, str, str], list[np.ndarray]] = {et: [] for et in self.csr if self.csr[et].time is not None}
        frontier: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}  # type -> (local, global, time)
        seed_local = {}
        for t, (ids, times) in seeds.items():
            ids, times = np.asarray(ids, np.int64), np.asarray(times, np.int64)
            if len(ids) != len(times):
                raise ValueError(f"seeds[{t!r}]: ids and times differ in length")
            if len(ids) and (ids.min() < 0 or ids.max() >= self.num_nodes[t]):
                raise ValueError(f"seeds[{t!r}] has ids outside [0, {self.num_nodes[t]})")
            local = np.arange(size[t], size[t] + len(ids))
            n_id[t].append(ids)
            s_time[t].append(times)
            size[t] += len(ids)
            frontier[t] = (local, ids, times)
            seed_local[t] = local
        for k in self.fanout:
            nxt: dict[str, list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = {}
            for et, csr in self.csr.items():
                src_t, _, dst_t = et
                if dst_t not in frontier:
                    continue
                local, ids, times = frontier[dst_t]
                owner, pos = sample_rows(csr, ids, times if csr.time is not None else None, k, rng)
                if not len(owner):
                    continue
                new_ids, new_times = csr.src[pos], times[owner]
                new_local = np.arange(size[src_t], size[src_t] + len(new_ids))
                size[src_t] += len(new_ids)
                n_id[src_t].append(new_ids)
                s_time[src_t].append(new_times)
                edges[et].append(np.stack([new_local, local[owner]]))
                if csr.time is not None:
                    e_time[et].append(csr.time[pos])
                nxt.setdefault(src_t, []).append((new_local, new_ids, new_times))
            frontier = {t: tuple(np.concatenate(p) for p in zip(*parts)) for t, parts in nxt.items()}
        cat = lambda parts: np.concatenate(parts) if parts else np.zeros(0, np.int64)  # noqa: E731
        return Subgraph(
            n_id={t: cat(v) for t, v in n_id.items()},
            seed_time={t: cat(v) for t, v in s_time.items()},
            edge_index={et: np.concatenate(v, 1) if v else np.zeros((2, 0), np.int64) for et, v in edges.items()},
            edge_time={et: cat(v) for et, v in e_time.items()},
            seeds=seed_local,
        )
