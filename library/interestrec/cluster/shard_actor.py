"""One k-means shard as a Ray actor: loads its blocks, joins the gloo group, runs the SPMD Lloyd loop.

The class is plain Python; :class:`~interestrec.cluster.actor_group.ShardActorGroup` wraps it with
``ray.remote``. Vectors come from the object store (numpy slices, Arrow blocks of a
``ray.data.Dataset`` or the caller's object refs) straight into the actor; rank 0 checkpoints the
centroids after every iteration.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from interestrec.cluster import gloo
from interestrec.cluster.assign import validate_vectors
from interestrec.cluster.checkpoint import write_checkpoint
from interestrec.cluster.lloyd import LoopState, fit_data
from interestrec.cluster.shard import ClusterData, LocalCollective, Shard


def block_vectors(obj: Any, column: str) -> tuple[np.ndarray, np.ndarray | None, str]:
    """Vectors (and ids, when a ``user_id``/``id`` column is present) from a numpy array or Arrow table.

    Returns ``(vectors, ids, problem)``; ``problem`` is a non-empty message when the block is unusable.

    Shapes:
        vectors: ``(n, d)``; ids: ``(n,)`` int64 or ``None``.
    """
    import pyarrow as pa

    from interestrec import artifacts

    if isinstance(obj, np.ndarray):
        return obj, None, ""
    if isinstance(obj, dict):
        obj = pa.table({k: (artifacts.vectors_to_arrow(v) if np.asarray(v).ndim == 2 else v) for k, v in obj.items()})
    if isinstance(obj, pa.Table):
        if column not in obj.column_names:
            return np.zeros((0, 0), np.float32), None, f"block has no vector column '{column}' (columns: {obj.column_names})"
        ids = None
        for name in ("user_id", "id"):
            if name in obj.column_names:
                ids = obj.column(name).to_numpy().astype(np.int64)
                break
        return artifacts.arrow_to_vectors(obj.column(column)), ids, ""
    return np.zeros((0, 0), np.float32), None, f"unsupported block type {type(obj).__name__}"


class ShardActor:
    """Holds one shard and runs the SPMD loop; wrapped with ``ray.remote`` by the actor group."""

    def __init__(self, rank: int, threads: int = 1) -> None:
        import torch
        from threadpoolctl import threadpool_limits

        torch.set_num_threads(max(1, int(threads)))
        self._blas_limits = threadpool_limits(limits=max(1, int(threads)))  # numpy's BLAS does the GEMMs
        self.rank = rank
        self.raw: np.ndarray | None = None
        self.ids: np.ndarray | None = None
        self.shard: Shard | None = None
        self.group = False

    def load(self, parts: list, column: str, metric: str) -> dict:
        """Fetch and validate this shard's blocks; returns ``{"n", "d", "problem"}``."""
        import ray

        self.shard, self.raw, self.ids = None, None, None  # a kept actor drops the previous fit's shard
        xs, ids = [], []
        for p in parts:
            obj = ray.get(p) if isinstance(p, ray.ObjectRef) else p
            x, i, problem = block_vectors(obj, column)
            if problem:
                return {"n": 0, "d": 0, "problem": f"shard {self.rank}: {problem}"}
            if x.shape[0]:
                xs.append(x)
                ids.append(i)
        if not xs:
            self.raw = None
            return {"n": 0, "d": 0, "problem": ""}
        dims = {x.shape[1] if x.ndim == 2 else -1 for x in xs}
        if len(dims) != 1:
            return {"n": 0, "d": 0, "problem": f"shard {self.rank}: blocks have different dimensions {sorted(dims)}"}
        try:
            x = validate_vectors(np.concatenate(xs), "vectors", metric)
        except ValueError as e:
            return {"n": 0, "d": 0, "problem": f"shard {self.rank}: {e}"}
        self.raw = x
        self.ids = np.concatenate(ids) if all(i is not None for i in ids) else None
        return {"n": int(x.shape[0]), "d": int(x.shape[1]), "problem": ""}

    def address(self) -> tuple[str, int]:
        """This node's IP and a free TCP port for the group's store."""
        import ray

        return ray.util.get_node_ip_address(), gloo.free_port()

    def init_group(self, addr: str, port: int, world: int, timeout_s: float) -> bool:
        """Join a new gloo process group (destroying any previous one first)."""
        gloo.join_group(addr, port, self.rank, world, timeout_s)
        self.group = True
        return True

    def destroy_group(self) -> bool:
        gloo.leave_group()
        self.group = False
        return True

    def fit(self, offset: int, world: int, dim: int, params: dict, init_centroids: np.ndarray | None,
            resume: dict | None, checkpoint_dir: str, meta: dict) -> dict:
        """Run initialisation (unless resuming), the Lloyd loop and the final pass on this shard."""
        if self.shard is None:
            x = self.raw if self.raw is not None else np.zeros((0, dim), np.float32)
            self.shard = Shard(x, offset, params["metric"], params["chunk_size"])
            self.raw = None  # spherical keeps only the normalised copy
        comm = gloo.GlooCollective(self.rank, world) if world > 1 else LocalCollective()
        data = ClusterData(self.shard, comm)

        def on_iteration(state: LoopState) -> None:
            if self.rank == 0:
                write_checkpoint(checkpoint_dir, state, meta)

        start = LoopState(resume["centroids"], resume["n_iter"], resume["history"], resume["done"]) if resume else None
        state, counts, inertia, times, reduce_s = fit_data(
            data, params["k"], init=params["init"], init_centroids=init_centroids, max_iter=params["max_iter"],
            tol=params["tol"], seed=params["seed"], resume=start, on_iteration=on_iteration,
        )
        out = {"n_iter": state.n_iter, "inertia": inertia, "times": times, "reduce_s": reduce_s,
               "compute_s": data.t_compute}
        if self.rank == 0:
            out.update(centroids=state.centroids, counts=counts, history=state.history)
        return out

    def labels(self) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """This shard's final labels, distances and ids (if the blocks had an id column)."""
        return self.shard.labels, self.shard.dist, self.ids
