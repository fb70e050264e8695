"""The ``dynamics`` stage: per-window interest clusters with lineage, drift metrics, descriptions, plots."""

from __future__ import annotations

from collections import Counter

import numpy as np

from interestrec import artifacts
from interestrec.dynamics import plots
from interestrec.dynamics.describe import describe_clusters
from interestrec.dynamics.tracker import track
from interestrec.stages import StageContext, StageError


def distributed_fit(num_actors: int):
    """A ``fit`` for :func:`track` running the distributed k-means (Ray actors, all-reduce)."""
    from interestrec.cluster import DistributedKMeans

    def fit(x, k, init, metric, seed):
        return DistributedKMeans(num_actors=num_actors).fit(x, k, metric=metric, init_centroids=init, seed=seed,
                                                             max_iter=100, tol=1e-5)

    return fit


def run(ctx: StageContext) -> dict:
    """Stage entry point (see ``interestrec.stages``)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from interestrec.data import load_ingest

    cfg, ccfg = ctx.config.dynamics, ctx.config.cluster
    out = ctx.stage_dir("dynamics")
    users = artifacts.read_parquet(artifacts.join(ctx.stage_dir("encode"), "users.parquet"), columns=["user_id", "window", "vector", "n_events"])
    users = users.filter(pc.and_(pc.greater_equal(users["window"], 0), pc.greater_equal(users["n_events"], cfg.min_events)))
    if users.num_rows == 0:
        raise StageError("no per-window user vectors in encode/users.parquet (window >= 0)")
    cluster_summary = artifacts.read_json(artifacts.join(ctx.stage_dir("cluster"), "summary.json"))
    k = int(cluster_summary["k"])
    init = artifacts.read_npy(artifacts.join(ctx.stage_dir("cluster"), "centroids.npy"))
    windows = sorted(set(users["window"].to_pylist()))
    per_window = []
    for w in windows:
        t = users.filter(pc.equal(users["window"], w))
        if t.num_rows >= k:
            per_window.append((w, t["user_id"].to_numpy(), artifacts.arrow_to_vectors(t["vector"])))
    if len(per_window) < 2:
        raise StageError(f"need >= 2 windows with >= K={k} users; got {len(per_window)}")
    n_max = max(len(x) for _, _, x in per_window)
    fit = distributed_fit(ccfg.num_actors) if n_max >= cfg.distributed_min_users else None
    dyn = track(per_window, k, init, cfg.mode, cfg.decay, ccfg.metric, cfg.survive_threshold, cfg.split_threshold,
                ctx.config.seed, fit)

    # artifacts: assignments, centroids, lineage
    rows = [pa.table({"user_id": w.user_ids, "window": pa.array(np.full(len(w.user_ids), w.window), pa.int32()),
                      "cluster": pa.array(dyn.user_stable(i).astype(np.int32))}) for i, w in enumerate(dyn.windows)]
    artifacts.write_parquet(artifacts.join(out, "assignments.parquet"), pa.concat_tables(rows))
    for w in dyn.windows:
        artifacts.write_npy(artifacts.join(out, "centroids", f"w{w.window}.npy"), w.centroids)
    art = load_ingest(ctx.stage_dir("ingest"))
    wtab = art.windows.to_pandas().set_index("window")
    lineage = {"windows": []}
    sizes: dict[int, list[int]] = {}
    descriptions: dict[int, dict] = {}
    lookback = ctx.config.encode.lookback_days * 86400
    for i, w in enumerate(dyn.windows):
        stable = dyn.user_stable(i)
        counts = Counter(stable.tolist())
        for sid in dyn.stable_ids[i].tolist():
            sizes.setdefault(int(sid), [0] * len(dyn.windows))[i] = int(counts.get(sid, 0))
        end = int(wtab.loc[w.window, "end"])
        ev = art.events.filter(pc.and_(pc.less(art.events["timestamp"], end), pc.greater_equal(art.events["timestamp"], end - lookback)))
        desc = describe_clusters(w.user_ids, stable, ev, art.items)
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
    artifacts.write_json(artifacts.join(out, "lineage.json"), lineage)
    clusters = {str(sid): {**descriptions.get(sid, {"description": ""}),
                           "sizes": {str(w.window): sizes[sid][i] for i, w in enumerate(dyn.windows)}} for sid in sorted(sizes)}
    artifacts.write_json(artifacts.join(out, "clusters.json"), clusters)

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
        pdir = artifacts.join(out, "plots")
        last = dyn.windows[-1]
        wins = [int(w.window) for w in dyn.windows]
        plot_files += [
            plots.pca_plot(last.vectors, dyn.user_stable(len(dyn.windows) - 1), f"{pdir}/pca_last_window.png",
                           f"Users by cluster, window {last.window}"),
            plots.silhouette_plot(last.vectors, last.labels, f"{pdir}/silhouette.png", ccfg.metric),
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
    return {
        "k": k,
        "mode": cfg.mode,
        "windows": per,
        "clusters": len(sizes),
        "examples": {sid: clusters[sid]["description"] for sid in list(clusters)[:6]},
        "plots": [p.rsplit("/", 1)[-1] for p in plot_files],
        "distributed": fit is not None,
    }
