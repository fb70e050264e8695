"""Distributed k-means: one Ray actor per shard, joined by a torch.distributed gloo process group.

Every actor (:class:`~interestrec.cluster.shard_actor.ShardActor`) runs the same
:func:`~interestrec.cluster.lloyd.fit_data` over a :class:`~interestrec.cluster.shard.ClusterData`
whose collective is :class:`~interestrec.cluster.gloo.GlooCollective`: each iteration is one float64
all-reduce of ``K·d + K + 1`` numbers (sums, counts, inertia), after which every actor computes the
same new centroids. Vectors go from the object store (numpy slices, Arrow blocks of a
``ray.data.Dataset``, or the caller's object refs) straight into the actors; the driver only sees
counts, the final centroids and the labels.

Fault tolerance: rank 0 checkpoints the centroids after every iteration under ``checkpoint_dir`` (a
local directory or any pyarrow URI — on a cluster, the run's output storage, so the driver finds it
whichever node rank 0 ran on). Every phase — shard load, group formation, the Lloyd loop and the
final labels — is retried after an actor death: the driver recreates the dead actors (which reload
their shard from the same object refs), destroys the gloo group in every survivor (a survivor that
does not answer in time is replaced too), forms a new one on a fresh TCP store port and resumes from
the checkpoint (:mod:`~interestrec.cluster.actor_group`). The loop is deterministic given the
centroids, so the result equals an uninterrupted run. Every wait on the actors has a deadline.

Several fits in a row (e.g. one per time window) can share the actors: inside ``with km.kept_actors():``
each fit loads its data into the running actors instead of starting new ones (an actor that died
between fits is replaced when the next fit loads its shard).
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from typing import Any

import numpy as np

from interestrec.cluster.actor_group import ShardActorGroup
from interestrec.cluster.assign import validate_vectors
from interestrec.cluster.checkpoint import read_checkpoint
from interestrec.cluster.lloyd import KMeansResult, check_init_centroids, check_params


class DistributedKMeans(ShardActorGroup):
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
        scheduling: Ray scheduling strategy for the actors, e.g. ``"SPREAD"`` to use every node, or a
            list with one strategy per rank.
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
        super().__init__(num_actors, threads_per_actor, num_cpus, scheduling, max_restarts, group_timeout_s, grace_s)
        self.backend = backend
        self.checkpoint_dir = checkpoint_dir
        self.fit_timeout_s = float(fit_timeout_s)
        self._keep = False

    @contextlib.contextmanager
    def kept_actors(self) -> Iterator[DistributedKMeans]:
        """Keep the actors alive across the fits inside the block (started by the first, killed at the end)."""
        self._keep = True
        try:
            yield self
        finally:
            self._keep = False
            self._stop()

    # -- data -------------------------------------------------------------------------------------
    def _parts(self, data: Any, column: str, metric: str) -> tuple[list[list], int | None, int | None]:
        """Split ``data`` into per-actor lists of object refs (validating numpy input on the driver)."""
        import ray

        if isinstance(data, np.ndarray):
            x = validate_vectors(data, "data", metric)
            return [[ray.put(s)] for s in np.array_split(x, self.num_actors)], x.shape[0], x.shape[1]
        if isinstance(data, ray.data.Dataset):
            names = data.schema().names  # once: a lazy Dataset may have to run to know its schema
            ds = data.select_columns([c for c in (column, "user_id", "id") if c in names])
            if column not in names:
                raise ValueError(f"dataset has no vector column '{column}' (columns: {names})")
            refs = ds.repartition(self.num_actors).to_arrow_refs()
        elif isinstance(data, (list, tuple)) and all(isinstance(r, ray.ObjectRef) for r in data):
            refs = list(data)
        else:
            raise ValueError(f"data must be a numpy array, a list of object refs or a ray.data.Dataset, got {type(data).__name__}")
        if not refs:
            raise ValueError("data is empty (no blocks)")
        groups = np.array_split(np.arange(len(refs)), self.num_actors)
        return [[refs[i] for i in g] for g in groups], None, None

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
        if self._keep and self.actors:
            self.restarts = 0  # the running actors load this fit's shards
        else:
            self._start()
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
            if not self._keep:
                self._stop()
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
            self._reset_after_loss(lost, parts, column, params["metric"])
            st = read_checkpoint(ckpt, meta)
            resume = None if st is None else {"centroids": st.centroids, "n_iter": st.n_iter,
                                              "history": st.history, "done": st.done}
