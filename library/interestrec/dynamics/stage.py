"""The ``dynamics`` stage: per-window interest clusters with lineage, drift metrics, descriptions, plots.

Scales with the data, not the driver: the driver reads only the users' ids per window; a window with at
least ``dynamics.distributed_min_users`` users goes from ``encode/users.parquet`` to the distributed
k-means actors through the object store, read by one Ray task per file (only ids, labels and centroids
come back); smaller ones are clustered in the driver with the single-process reference. The actors are
started once for all windows. The events behind the cluster descriptions are counted by one Ray task
per ``ingest/events.parquet`` part (:mod:`~interestrec.dynamics.ray_counts`); the driver sums
per-``(cluster, item)`` counts.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from interestrec import artifacts, layout
from interestrec.dynamics import plots
from interestrec.dynamics.counts import membership
from interestrec.dynamics.describe import describe_counts
from interestrec.dynamics.tracker import track
from interestrec.dynamics.warmstart import local_fit
from interestrec.dynamics.windows import (
    WindowRows,
    align,
    plot_sample,
    read_user_vectors,
    read_window_vectors,
    window_blocks,
    window_users,
)
from interestrec.stages import StageContext, StageError

if TYPE_CHECKING:
    from interestrec.cluster.distributed import DistributedKMeans
    from interestrec.cluster.lloyd import KMeansResult


def window_fit(km: DistributedKMeans, min_users: int) -> Callable:
    """A ``fit`` for :func:`track`: the distributed k-means ``km`` for :class:`WindowRows` (labels put back
    in the window's user order) or an array of at least ``min_users`` rows, else the reference."""

    def fit(x: WindowRows | np.ndarray, k: int, init: np.ndarray | None, metric: str, seed: int) -> KMeansResult:
        if isinstance(x, WindowRows):
            res = km.fit(window_blocks(x, km.num_actors), k, metric=metric, init_centroids=init, seed=seed, max_iter=100, tol=1e-5)
            pos = align(res.ids, x.user_ids)
            return dataclasses.replace(res, labels=res.labels[pos], distances=res.distances[pos], ids=res.ids[pos])
        if len(x) >= min_users:
            return km.fit(x, k, metric=metric, init_centroids=init, seed=seed, max_iter=100, tol=1e-5)
        return local_fit(x, k, init, metric, seed)

    return fit


def kept_actor_cpus(num_actors: int, threads: int, cluster_cpus: float) -> float | None:
    """CPUs each k-means actor reserves when kept across windows, or ``None`` when they cannot be kept.

    Kept actors stay alive while the next window is read, so together they must leave at least one CPU
    to the read tasks (else the read waits for CPUs the idle actors hold).
    """
    per = min(float(threads), (cluster_cpus - 1) / num_actors)
    return per if per > 0 else None


def run(ctx: StageContext) -> dict:
    """Stage entry point (see ``interestrec.stages``)."""
    import pyarrow as pa
    import ray

    from interestrec.cluster.distributed import DistributedKMeans
    from interestrec.dynamics.ray_counts import count_parts

    cfg, ccfg = ctx.config.dynamics, ctx.config.cluster
    out = ctx.stage_dir("dynamics")
    upath = artifacts.join(ctx.stage_dir("encode"), layout.ENCODE_USERS)
    clock = [time.perf_counter()]
    phases: dict[str, float] = {}

    def phase(name: str) -> None:
        now = time.perf_counter()
        phases[name] = round(now - clock[0], 2)
        clock[0] = now

    by_window = window_users(upath, cfg.min_events)
    if not by_window:
        raise StageError("no per-window user vectors in encode/users.parquet (window >= 0)")
    cluster_summary = artifacts.read_json(artifacts.join(ctx.stage_dir("cluster"), layout.SUMMARY))
    k = int(cluster_summary["k"])
    init = artifacts.read_npy(artifacts.join(ctx.stage_dir("cluster"), layout.CLUSTER_CENTROIDS))
    usable = [w for w in sorted(by_window) if len(by_window[w]) >= k]
    if len(usable) < 2:
        raise StageError(f"need >= 2 windows with >= K={k} users; got {len(usable)}")
    per_window = []
    for w in usable:
        if cfg.mode == "warm" and len(by_window[w]) >= cfg.distributed_min_users:
            per_window.append((w, by_window[w], WindowRows(upath, w, cfg.min_events, by_window[w])))
        else:
            per_window.append((w, *read_window_vectors(upath, w, cfg.min_events)))
    phase("read_window_users")
    distributed = any(len(u) >= cfg.distributed_min_users for _, u, _ in per_window)
    cpus = kept_actor_cpus(ccfg.num_actors, 1, ray.cluster_resources().get("CPU", 0)) if distributed else None
    km = DistributedKMeans(num_actors=ccfg.num_actors, num_cpus=cpus)
    with km.kept_actors() if cpus is not None else contextlib.nullcontext():
        dyn = track(per_window, k, init, cfg.mode, cfg.decay, ccfg.metric, cfg.survive_threshold, cfg.split_threshold,
                    ctx.config.seed, window_fit(km, cfg.distributed_min_users))
    phase("cluster_windows")

    # artifacts: assignments, centroids, lineage
    rows = [pa.table({"user_id": w.user_ids, "window": pa.array(np.full(len(w.user_ids), w.window), pa.int32()),
                      "cluster": pa.array(dyn.user_stable(i).astype(np.int32))}) for i, w in enumerate(dyn.windows)]
    artifacts.write_parquet(artifacts.join(out, layout.DYNAMICS_ASSIGNMENTS), pa.concat_tables(rows))
    for w in dyn.windows:
        artifacts.write_npy(artifacts.join(out, layout.DYNAMICS_CENTROIDS.format(window=w.window)), w.centroids)
    items = artifacts.read_parquet(artifacts.join(ctx.stage_dir("ingest"), layout.INGEST_ITEMS))
    wtab = artifacts.read_parquet(artifacts.join(ctx.stage_dir("ingest"), layout.INGEST_WINDOWS))
    wtab = wtab.to_pandas().set_index("window")
    lookback = ctx.config.encode.lookback_days * 86400
    ends = [int(wtab.loc[w.window, "end"]) for w in dyn.windows]
    counted = count_parts(artifacts.parquet_files(artifacts.join(ctx.stage_dir("ingest"), layout.INGEST_EVENTS)),
                          [(end - lookback, end) for end in ends],
                          [membership(w.user_ids, dyn.user_stable(i)) for i, w in enumerate(dyn.windows)])
    phase("count_events")
    lineage = {"windows": []}
    sizes: dict[int, list[int]] = {}
    descriptions: dict[int, dict] = {}
    for i, w in enumerate(dyn.windows):
        stable = dyn.user_stable(i)
        counts = Counter(stable.tolist())
        for sid in dyn.stable_ids[i].tolist():
            sizes.setdefault(int(sid), [0] * len(dyn.windows))[i] = int(counts.get(sid, 0))
        desc = describe_counts(counted[i], items)
        for sid, d in desc.items():
            descriptions[sid] = {**d, "last_window": int(w.window)}
        entry = {"window": int(w.window), "clusters": [
            {"id": int(sid), "size": int(counts.get(sid, 0)), "description": desc.get(int(sid), {}).get("description", "")}
            for sid in dyn.stable_ids[i].tolist()]}
        if i > 0:
            t = dyn.transitions[i - 1]
            entry["labels"] = {"previous": {str(k_): v for k_, v in t.prev_labels.items()},
                               "current": {str(k_): v for k_, v in t.curr_labels.items()}}
            entry["parents"] = {str(k_): v for k_, v in t.parents.items()}
            entry["transition"] = dyn.drift[i - 1]["transition"]
        lineage["windows"].append(entry)
    artifacts.write_json(artifacts.join(out, layout.DYNAMICS_LINEAGE), lineage)
    clusters = {str(sid): {**descriptions.get(sid, {"description": ""}),
                           "sizes": {str(w.window): sizes[sid][i] for i, w in enumerate(dyn.windows)}} for sid in sorted(sizes)}
    artifacts.write_json(artifacts.join(out, layout.DYNAMICS_CLUSTERS), clusters)

    per = [{"window": int(dyn.windows[0].window), "users": int(len(dyn.windows[0].user_ids)),
            "sizes": dict(Counter(map(int, dyn.user_stable(0))))}]
    for i, d in enumerate(dyn.drift, start=1):
        labs = d["labels"]
        per.append({"window": int(dyn.windows[i].window), "users": int(len(dyn.windows[i].user_ids)),
                    "common_users": d["common_users"], "centroid_shift": d["centroid_shift"], "ari": d["ari"],
                    "moved_share": d["moved_share"], "sizes": dict(Counter(map(int, dyn.user_stable(i)))),
                    "label_counts": dict(Counter(labs["previous"].values()) + Counter(
                        v for v in labs["current"].values() if v == "emerged"))})
    plot_files = []
    if cfg.plots:
        pdir = artifacts.join(out, layout.DYNAMICS_PLOTS)
        last = dyn.windows[-1]
        wins = [int(w.window) for w in dyn.windows]
        idx = plot_sample(len(last.user_ids), ccfg.silhouette_sample, ctx.config.seed)  # never all the vectors
        xs = last.vectors[idx] if last.vectors is not None else read_user_vectors(upath, last.window, last.user_ids[idx])
        plot_files += [
            plots.pca_plot(xs, dyn.user_stable(len(dyn.windows) - 1)[idx], f"{pdir}/pca_last_window.png",
                           f"Users by cluster, window {last.window} (sample)"),
            plots.silhouette_plot(xs, last.labels[idx], f"{pdir}/silhouette.png", ccfg.metric),
            plots.sizes_plot(wins, sizes, f"{pdir}/sizes_over_time.png"),
            plots.shift_plot(wins[1:], [p["centroid_shift"] for p in per[1:]], [p["moved_share"] for p in per[1:]],
                             f"{pdir}/centroid_shift.png"),
            plots.transition_plot(dyn.drift[-1]["transition"], f"{pdir}/transitions_w{wins[-1]}.png",
                                  f"Transitions window {wins[-2]} → {wins[-1]}"),
        ]
        if cluster_summary.get("k_grid"):
            grid = cluster_summary["k_grid"]
            if isinstance(grid, dict):
                grid = [dict(zip(grid, vals)) for vals in zip(*grid.values())]
            plot_files.append(plots.elbow_plot(grid, k, f"{pdir}/elbow.png"))
    phase("describe_and_write")
    return {
        "k": k,
        "mode": cfg.mode,
        "phase_seconds": phases,
        "windows": per,
        "clusters": len(sizes),
        "examples": {sid: clusters[sid]["description"] for sid in list(clusters)[:6]},
        "plots": [p.rsplit("/", 1)[-1] for p in plot_files],
        "distributed": distributed,
    }
