"""Distributed k-means: one Ray actor per shard, joined by a torch.distributed gloo process group.

Every actor runs the same :func:`~interestrec.cluster.lloyd.fit_data` over a
:class:`~interestrec.cluster.shard.ClusterData` whose collective is :class:`GlooCollective`: each
iteration is one float64 all-reduce of ``K·d + K + 1`` numbers (sums, counts, inertia), after which
every actor computes the same new centroids. Vectors go from the object store (numpy slices, Arrow
blocks of a ``ray.data.Dataset``, or the caller's object refs) straight into the actors; the driver
only sees counts, the final centroids and the labels.

Fault tolerance: rank 0 checkpoints the centroids after every iteration under ``checkpoint_dir`` (a
local directory or any pyarrow URI — on a cluster, the run's output storage, so the driver finds it
whichever node rank 0 ran on). Every phase — shard load, group formation, the Lloyd loop and the
final labels — is retried after an actor death: the driver recreates the dead actors (which reload
their shard from the same object refs), destroys the gloo group in every survivor (a survivor that
does not answer in time is replaced too), forms a new one on a fresh TCP store port and resumes from
the checkpoint. The loop is deterministic given the centroids, so the result equals an uninterrupted
run. Every wait on the actors has a deadline.
"""

from __future__ import annotations

import datetime
import logging
import shutil
import socket
import tempfile
import time
import uuid
from typing import Any

import numpy as np

from interestrec.cluster.assign import validate_vectors
from interestrec.cluster.checkpoint import read_checkpoint, write_checkpoint
from interestrec.cluster.lloyd import KMeansResult, LoopState, check_init_centroids, check_params, fit_data
from interestrec.cluster.shard import ClusterData, LocalCollective, Shard

log = logging.getLogger(__name__)


class GlooCollective:
    """:class:`~interestrec.cluster.shard.Collective` over the default torch.distributed (gloo) group."""

    def __init__(self, rank: int, world: int) -> None:
        self.rank = rank
        self.world = world

    def allreduce(self, a: np.ndarray) -> np.ndarray:
        import torch
        import torch.distributed as dist

        t = torch.from_numpy(np.array(a, copy=True))
        dist.all_reduce(t)
        return t.numpy()

    def allgather(self, a: np.ndarray) -> list[np.ndarray]:
        import torch
        import torch.distributed as dist

        t = torch.from_numpy(np.array(a, copy=True))
        out = [torch.empty_like(t) for _ in range(self.world)]
        dist.all_gather(out, t)
        return [o.numpy() for o in out]

    def broadcast(self, a: np.ndarray) -> np.ndarray:
        import torch
        import torch.distributed as dist

        t = torch.from_numpy(np.array(a, copy=True))
        dist.broadcast(t, src=0)
        return t.numpy()


def _to_array(obj: Any, column: str) -> tuple[np.ndarray, np.ndarray | None, str]:
    """Vectors (and ids, when a ``user_id``/``id`` column is present) from a numpy array or Arrow table."""
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
    """Holds one shard and runs the SPMD loop; wrapped with ``ray.remote`` by :class:`DistributedKMeans`."""

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

    def ping(self) -> int:
        return self.rank

    def load(self, parts: list, column: str, metric: str) -> dict:
        """Fetch and validate this shard's blocks; returns ``{"n", "d", "problem"}``."""
        import ray

        xs, ids = [], []
        for p in parts:
            obj = ray.get(p) if isinstance(p, ray.ObjectRef) else p
            x, i, problem = _to_array(obj, column)
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

        with socket.socket() as s:
            s.bind(("", 0))
            port = s.getsockname()[1]
        return ray.util.get_node_ip_address(), port

    def init_group(self, addr: str, port: int, world: int, timeout_s: float) -> bool:
        """Join a new gloo process group (destroying any previous one first)."""
        import torch.distributed as dist

        self.destroy_group()
        dist.init_process_group(
            "gloo", init_method=f"tcp://{addr}:{port}", rank=self.rank, world_size=world,
            timeout=datetime.timedelta(seconds=timeout_s),
        )
        self.group = True
        return True

    def destroy_group(self) -> bool:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()
        self.group = False
        return True

    def fit(self, offset: int, world: int, dim: int, params: dict, init_centroids: np.ndarray | None,
            resume: dict | None, checkpoint_dir: str, meta: dict) -> dict:
        """Run initialisation (unless resuming), the Lloyd loop and the final pass on this shard."""
        if self.shard is None:
            x = self.raw if self.raw is not None else np.zeros((0, dim), np.float32)
            self.shard = Shard(x, offset, params["metric"], params["chunk_size"])
            self.raw = None  # spherical keeps only the normalised copy
        comm = GlooCollective(self.rank, world) if world > 1 else LocalCollective()
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


class DistributedKMeans:
    """k-means over Ray actors with all-reduce centroid updates.

    Args:
        num_actors: shard actors (one gloo rank each).
        threads_per_actor: BLAS threads per actor.
        backend: ``gloo`` (CPU all-reduce; the only backend).
        checkpoint_dir: where rank 0 checkpoints every iteration: a local directory or any pyarrow URI
            that both rank 0 and the driver reach (on a cluster: object storage). Default: a temporary
            directory, removed after the fit — enough on one node only.
        num_cpus: Ray CPUs reserved per actor (default ``threads_per_actor``; fractions let more actors
            share a small machine).
        scheduling: Ray scheduling strategy for the actors, e.g. ``"SPREAD"`` to use every node.
        max_restarts: actor failures tolerated per fit.
        group_timeout_s: gloo collective timeout (also the deadline for load, group formation and labels).
        fit_timeout_s: deadline for the whole Lloyd loop of one attempt.
        grace_s: after an actor died, how long the survivors get to return before they are replaced.

    Attributes:
        actors: the live actors during a fit (tests kill one of them).
        restarts: actor failures recovered from in the last fit.
    """

    def __init__(
        self,
        num_actors: int = 2,
        threads_per_actor: int = 1,
        backend: str = "gloo",
        checkpoint_dir: str | None = None,
        num_cpus: float | None = None,
        scheduling: Any = None,
        max_restarts: int = 3,
        group_timeout_s: float = 120.0,
        fit_timeout_s: float = 3600.0,
        grace_s: float = 30.0,
    ) -> None:
        if backend != "gloo":
            raise ValueError(f"backend '{backend}' is not supported; use 'gloo'")
        if num_actors < 1 or threads_per_actor < 1:
            raise ValueError(f"num_actors and threads_per_actor must be ≥ 1, got {num_actors}, {threads_per_actor}")
        self.num_actors = int(num_actors)
        self.threads_per_actor = int(threads_per_actor)
        self.backend = backend
        self.checkpoint_dir = checkpoint_dir
        self.num_cpus = float(threads_per_actor if num_cpus is None else num_cpus)
        self.scheduling = scheduling
        self.max_restarts = int(max_restarts)
        self.group_timeout_s = float(group_timeout_s)
        self.fit_timeout_s = float(fit_timeout_s)
        self.grace_s = float(grace_s)
        self.actors: list = []
        self.restarts = 0

    # -- data -------------------------------------------------------------------------------------
    def _parts(self, data: Any, column: str, metric: str) -> tuple[list[list], int | None, int | None]:
        """Split ``data`` into per-actor lists of object refs (validating numpy input on the driver)."""
        import ray

        if isinstance(data, np.ndarray):
            x = validate_vectors(data, "data", metric)
            return [[ray.put(s)] for s in np.array_split(x, self.num_actors)], x.shape[0], x.shape[1]
        if isinstance(data, ray.data.Dataset):
            ds = data.select_columns([c for c in (column, "user_id", "id") if c in data.schema().names])
            if column not in ds.schema().names:
                raise ValueError(f"dataset has no vector column '{column}' (columns: {data.schema().names})")
            refs = ds.repartition(self.num_actors).to_arrow_refs()
        elif isinstance(data, (list, tuple)) and all(isinstance(r, ray.ObjectRef) for r in data):
            refs = list(data)
        else:
            raise ValueError(f"data must be a numpy array, a list of object refs or a ray.data.Dataset, got {type(data).__name__}")
        if not refs:
            raise ValueError("data is empty (no blocks)")
        groups = np.array_split(np.arange(len(refs)), self.num_actors)
        return [[refs[i] for i in g] for g in groups], None, None

    def _make_actor(self, rank: int):
        import ray

        opts: dict = {"num_cpus": self.num_cpus, "max_concurrency": 2}
        if self.scheduling is not None:
            opts["scheduling_strategy"] = self.scheduling
        cls = ray.remote(ShardActor).options(**opts)
        return cls.remote(rank, self.threads_per_actor)

    def _gather(self, refs: list, timeout_s: float) -> list:
        """Each call's value, or the exception it raised (``TimeoutError`` for a call still running at the
        deadline). Once an actor is seen dead the others get at most ``grace_s`` more."""
        import ray
        from ray.exceptions import RayActorError

        deadline = time.monotonic() + timeout_s
        pending = list(refs)
        while pending and time.monotonic() < deadline:
            ready, pending = ray.wait(pending, num_returns=1, timeout=max(0.0, min(1.0, deadline - time.monotonic())))
            for r in ready:
                try:
                    ray.get(r, timeout=self.grace_s)
                except RayActorError:
                    deadline = min(deadline, time.monotonic() + self.grace_s)
                except Exception:  # noqa: S110 — reported to the caller below
                    pass
        out: list = []
        for r in refs:
            if r in pending:
                out.append(TimeoutError(f"no answer within {timeout_s:.0f} s"))
                continue
            try:
                out.append(ray.get(r, timeout=self.grace_s))
            except Exception as e:  # returned, not swallowed: the caller decides
                out.append(e)
        return out

    def _lost(self, outcomes: list) -> list[int]:
        """Ranks whose actor died or did not answer in time."""
        from ray.exceptions import RayActorError

        return [i for i, o in enumerate(outcomes) if isinstance(o, (RayActorError, TimeoutError))]

    def _replace(self, ranks: list[int]) -> None:
        import ray

        for i in ranks:
            try:
                ray.kill(self.actors[i], no_restart=True)
            except Exception as e:  # already gone
                log.debug("k-means: kill of rank %d: %s", i, e)
            self.actors[i] = self._make_actor(i)

    def _load(self, ranks: list[int], parts: list, column: str, metric: str) -> dict[int, dict]:
        """Load the shards of ``ranks``, replacing actors that die while loading."""
        loads: dict[int, dict] = {}
        todo = list(ranks)
        while todo:
            outs = self._gather([self.actors[i].load.remote(parts[i], column, metric) for i in todo], self.group_timeout_s)
            lost = [todo[j] for j in self._lost(outs)]
            for i, o in zip(todo, outs):
                if i in lost:
                    continue
                if isinstance(o, Exception):
                    raise o
                loads[i] = o
            if lost:
                self._recovered(lost, "load", outs)
                self._replace(lost)
            todo = lost
        return loads

    def _recovered(self, lost: list[int], phase: str, outs: list) -> None:
        self.restarts += 1
        if self.restarts > self.max_restarts:
            errs = [o for o in outs if isinstance(o, Exception)]
            raise RuntimeError(f"k-means actors failed {self.restarts} times (last in {phase}); giving up") from (
                errs[0] if errs else None)
        log.warning("k-means: actor(s) %s lost during %s; replacing them and resuming", lost, phase)

    def _form_group(self) -> list[int]:
        """A fresh gloo group over the current actors; the ranks lost meanwhile (empty on success)."""
        if self.num_actors == 1:
            return []
        got = self._gather([self.actors[0].address.remote()], self.group_timeout_s)
        if self._lost(got):
            return [0]
        if isinstance(got[0], Exception):
            raise got[0]
        addr, port = got[0]
        outs = self._gather([a.init_group.remote(addr, port, self.num_actors, self.group_timeout_s)
                             for a in self.actors], self.group_timeout_s + self.grace_s)
        lost = self._lost(outs)
        errs = [o for o in outs if isinstance(o, Exception)]
        if errs and not lost:
            # a rank could not join (e.g. the store host went away): replace every rank that failed
            lost = [i for i, o in enumerate(outs) if isinstance(o, Exception)]
        return lost

    # -- fit --------------------------------------------------------------------------------------
    def fit(
        self,
        data: Any,
        k: int,
        *,
        metric: str = "euclidean",
        init: str = "k-means++",
        init_centroids: np.ndarray | None = None,
        max_iter: int = 50,
        tol: float = 1e-4,
        seed: int = 0,
        chunk_size: int = 16384,
        column: str = "vector",
    ) -> KMeansResult:
        """Cluster ``data`` (numpy ``(n, d)``, a list of object refs to arrays/Arrow tables, or a Dataset).

        Same parameters and result as :func:`~interestrec.cluster.lloyd.kmeans`; the result also carries
        ``distances`` and, when the blocks had a ``user_id``/``id`` column, ``ids``.

        Raises:
            ValueError: invalid parameters, NaN/inf vectors, ``k > n`` or a dimension mismatch — before
                any actor starts for numpy input, right after the shards load (before the fit) otherwise.
        """
        import ray

        check_params(k, metric, init, max_iter, tol)
        parts, n, d = self._parts(data, column, metric)
        c0 = None
        if n is not None:
            if k > n:
                raise ValueError(f"k={k} is larger than the number of rows n={n}")
            if init_centroids is not None:
                c0 = check_init_centroids(init_centroids, k, d, metric)
        from interestrec import artifacts

        own_ckpt = self.checkpoint_dir is None
        ckpt = tempfile.mkdtemp(prefix="kmeans-ckpt-") if own_ckpt else self.checkpoint_dir
        artifacts.makedirs(ckpt)
        self.restarts = 0
        self.actors = [self._make_actor(r) for r in range(self.num_actors)]
        try:
            loaded = self._load(list(range(self.num_actors)), parts, column, metric)
            loads = [loaded[i] for i in range(self.num_actors)]
            problems = [lo["problem"] for lo in loads if lo["problem"]]
            if problems:
                raise ValueError("; ".join(problems))
            counts = [lo["n"] for lo in loads]
            dims = {lo["d"] for lo in loads if lo["n"]}
            if len(dims) > 1:
                raise ValueError(f"shards have different dimensions {sorted(dims)}")
            n, d = sum(counts), dims.pop() if dims else 0
            if n == 0:
                raise ValueError("data is empty (0 rows)")
            if k > n:
                raise ValueError(f"k={k} is larger than the number of rows n={n}")
            if init_centroids is not None and c0 is None:
                c0 = check_init_centroids(init_centroids, k, d, metric)
            offsets = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(int).tolist()
            params = {"k": int(k), "metric": metric, "init": init, "max_iter": int(max_iter), "tol": float(tol),
                      "seed": int(seed), "chunk_size": int(chunk_size)}
            # fit_id: a checkpoint left by another fit in the same directory is never resumed
            meta = {"k": int(k), "d": int(d), "n": int(n), "seed": int(seed), "metric": metric,
                    "fit_id": uuid.uuid4().hex}
            outs, got = self._run(parts, column, offsets, d, params, c0, ckpt, meta)
        finally:
            for a in self.actors:
                try:
                    ray.kill(a)
                except Exception as e:  # already gone
                    log.debug("k-means: kill: %s", e)
            self.actors = []
            if own_ckpt:
                shutil.rmtree(ckpt, ignore_errors=True)  # a temporary local directory we made
        r0 = outs[0]
        ids = [g[2] for g in got]
        return KMeansResult(
            centroids=r0["centroids"], labels=np.concatenate([g[0] for g in got]).astype(np.int32),
            inertia=float(r0["inertia"]), n_iter=int(r0["n_iter"]), counts=r0["counts"], history=r0["history"],
            seconds_per_iter=r0["times"], reduce_seconds=float(max(o["reduce_s"] for o in outs)),
            distances=np.concatenate([g[1] for g in got]),
            ids=np.concatenate(ids) if all(i is not None for i in ids) else None,
        )

    def _run(self, parts, column, offsets, d, params, c0, ckpt, meta) -> tuple[list[dict], list]:
        """Group formation, the Lloyd loop and the labels; after a lost actor, all three again from the checkpoint."""
        resume, phase = None, "group formation"
        while True:
            lost = self._form_group()
            outs: list = []
            if not lost:
                phase = "fit"
                refs = [a.fit.remote(off, self.num_actors, d, params, c0, resume, ckpt, meta)
                        for a, off in zip(self.actors, offsets)]
                outs = self._gather(refs, self.fit_timeout_s)
                lost = self._lost(outs)
                if not lost:
                    errors = [o for o in outs if isinstance(o, Exception)]
                    if errors:
                        inner = getattr(errors[0], "cause", None)
                        raise inner if isinstance(inner, ValueError) else errors[0]
                    phase = "labels"
                    got = self._gather([a.labels.remote() for a in self.actors], self.group_timeout_s)
                    lost = self._lost(got)
                    if not lost:
                        bad = [g for g in got if isinstance(g, Exception)]
                        if bad:
                            raise bad[0]
                        return outs, got
                    outs = got
            self._recovered(lost, phase, outs)
            survivors = [i for i in range(self.num_actors) if i not in lost]
            done = self._gather([self.actors[i].destroy_group.remote() for i in survivors], self.grace_s)
            stuck = [survivors[j] for j, o in enumerate(done) if isinstance(o, Exception)]
            replaced = sorted(set(lost) | set(stuck))
            self._replace(replaced)
            self._load(replaced, parts, column, params["metric"])
            st = read_checkpoint(ckpt, meta)
            resume = None if st is None else {"centroids": st.centroids, "n_iter": st.n_iter,
                                              "history": st.history, "done": st.done}
