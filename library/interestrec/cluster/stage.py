"""The ``cluster`` stage: K selection and distributed k-means over users' whole-history vectors.

Reads ``DIR/encode/users.parquet`` rows with ``window == -1`` (one read task per file: the vectors go from
the files straight to the k-means actors, ``cluster.sources``), picks K (``k: auto``) on a seeded sample, fits
:class:`~interestrec.cluster.distributed.DistributedKMeans` and writes ``centroids.npy``,
``assignments.parquet`` and the summary (see ``docs/artifacts.md``).
"""

from __future__ import annotations

import numpy as np

from interestrec import artifacts, layout
from interestrec.stages import StageContext, StageError

WHOLE_HISTORY = [("window", "=", -1)]  # users' whole-history rows (one row group per window in each part)


def _load(path: str, sample: int, seed: int, num_actors: int):
    """Object refs to the whole-history rows for the actors (one read task per file), their count, and a
    seeded sample of their vectors for K selection and the metrics."""
    from interestrec.cluster.sources import file_blocks, read_rows, sample_rows

    files = artifacts.parquet_files(path)
    n = sum(read_rows(f, ["user_id"], WHOLE_HISTORY).num_rows for f in files)
    if n == 0:
        raise StageError(f"{path} has no rows with window == -1 (users' whole-history vectors)")
    x = artifacts.arrow_to_vectors(sample_rows(files, ["vector"], WHOLE_HISTORY, min(1.0, sample / n), seed)["vector"])
    return file_blocks(files, ["user_id", "vector"], WHOLE_HISTORY, num_actors), n, x


def run(ctx: StageContext) -> dict:
    """Select K, cluster users, write centroids, assignments and the summary."""
    import pyarrow as pa

    from interestrec.cluster.alternatives import compare
    from interestrec.cluster.assign import assign
    from interestrec.cluster.distributed import DistributedKMeans
    from interestrec.cluster.metrics import cluster_metrics
    from interestrec.cluster.select_k import select_k

    cfg = ctx.config.cluster
    seed = ctx.config.seed
    path = artifacts.join(ctx.stage_dir("encode"), layout.ENCODE_USERS)
    if not artifacts.exists(path):
        raise StageError(f"missing {path}: run the encode stage first")
    refs, n, sample = _load(path, cfg.silhouette_sample, seed, cfg.num_actors)
    ctx.log(f"cluster: {n} users, d={sample.shape[1]}, sample {sample.shape[0]}")

    if cfg.k == "auto":
        try:
            sel = select_k(sample, cfg.k_grid, cfg.metric, seed, cfg.silhouette_sample, cfg.init, cfg.max_iter, cfg.tol)
        except ValueError as e:
            raise StageError(f"cluster: cannot choose K: {e}") from e
        k, reason, grid = sel.k, sel.reason, sel.grid
    else:
        k, reason, grid = int(cfg.k), f"K={cfg.k} set in the config", []
    if k > n:
        raise StageError(f"cluster.k={k} exceeds the number of users ({n})")

    km = DistributedKMeans(
        cfg.num_actors, cfg.threads_per_actor, cfg.backend,
        scheduling=cfg.scheduling or None,
        checkpoint_dir=artifacts.join(ctx.stage_dir("cluster"), "kmeans_checkpoint"),  # shared when the output is
    )
    res = km.fit(refs, k, metric=cfg.metric, init=cfg.init, max_iter=cfg.max_iter, tol=cfg.tol, seed=seed,
                 chunk_size=cfg.chunk_size)
    out = ctx.stage_dir("cluster")
    artifacts.write_npy(artifacts.join(out, layout.CLUSTER_CENTROIDS), res.centroids.astype(np.float32))
    order = np.argsort(res.ids, kind="stable")
    artifacts.write_parquet(artifacts.join(out, layout.CLUSTER_ASSIGNMENTS), pa.table({
        "user_id": pa.array(res.ids[order], pa.int64()),
        "cluster": pa.array(res.labels[order], pa.int32()),
        "distance": pa.array(res.distances[order], pa.float32()),
    }))
    labels_sample, _ = assign(sample, res.centroids, cfg.metric)
    m = cluster_metrics(sample, labels_sample, res.centroids, cfg.metric, cfg.silhouette_sample, seed)
    summary = {
        "k": k, "k_reason": reason, "k_grid": grid,
        "silhouette": m["silhouette"], "davies_bouldin": m["davies_bouldin"],
        "calinski_harabasz": m["calinski_harabasz"], "mean_centroid_distance": m["mean_centroid_distance"],
        "metrics_rows": m["n"],
        "sizes": res.counts.astype(int).tolist(), "n_iter": res.n_iter, "inertia": res.inertia,
        "users": int(n), "dim": int(res.centroids.shape[1]), "metric": cfg.metric, "init": cfg.init,
        "num_actors": cfg.num_actors, "restarts": km.restarts,
        "ms_per_iter": float(1000 * np.mean(res.seconds_per_iter)) if res.seconds_per_iter else 0.0,
    }
    if cfg.alternatives:
        summary["alternatives"] = compare(sample, cfg.alternatives, k, labels_sample, cfg.metric, seed,
                                          cfg.alternatives_sample)
    sil = "n/a" if m["silhouette"] is None else f"{m['silhouette']:.3f}"
    ctx.log(f"cluster: K={k} ({reason}); silhouette {sil}; sizes {summary['sizes']}")
    return summary
