"""Scale run: synthetic users × events through ingest → pool-mode encode → k-means → dynamics.

    python jobs/bench_scale.py --users 50000                 # the small run (about a minute)
    python jobs/bench_scale.py --users 1000000 --events 50   # the full run: 1M users × 50 events, K=1000

Generates a seeded synthetic log (``interestrec.data.synthetic``) into a scratch directory under /tmp
(never the repository), then runs the stages through the library API with one ``StageContext``:

* ingest — the real ``ingest`` stage (format ``synthetic``) when the synthetic reader exists and
  ``--ingest stage``/``auto`` picks it; otherwise (``--ingest direct``) the shards are read with pyarrow,
  checked with vectorised typed checks (the generator writes typed columns, so there is no text to
  parse), de-duplicated, split with ``interestrec.data.leave_last_out`` and windowed with
  ``window_edges``/``assign_windows``, and the ingest artifacts of docs/artifacts.md are written;
* encode — pool mode over the generator's ``item_vectors`` instead of the language model (the model's
  items/s is measured by jobs/bench_encode.py): whole-train-history and per-window user vectors with
  ``interestrec.encode.pooling.pool_user_vectors``; multi-interests are timed on a user sample only;
* cluster — the real ``cluster`` stage: ``DistributedKMeans`` with ``--k`` clusters on ``--actors`` actors;
* dynamics — the real ``dynamics`` stage over ``--windows`` windows (warm-started distributed k-means
  per window, matching, drift, descriptions, plots).

Wall time per stage and peak memory (the driver's RSS and the summed PSS of the Ray processes: raylet,
GCS, workers, actors — sampled every 0.2 s) are printed as a table with the stage that bounds the run and
its cost per user. The last line is ``users_per_s=<users ÷ pipeline seconds>`` (generation excluded).
"""

from __future__ import annotations

import argparse
import dataclasses
import glob
import logging
import os
import shutil
import tempfile
import threading
import time
from collections import Counter
from contextlib import contextmanager

import numpy as np

WINDOW_DAYS = 90  # the generator's window length


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--users", type=int, default=1_000_000)
    p.add_argument("--events", type=int, default=50, help="mean events per user (heavy-tailed)")
    p.add_argument("--items", type=int, default=100_000)
    p.add_argument("--topics", type=int, default=64, help="planted interest clusters")
    p.add_argument("--dim", type=int, default=64, help="item/user vector dimension")
    p.add_argument("--k", type=int, default=1000, help="k-means clusters (cluster and dynamics stages)")
    p.add_argument("--windows", type=int, default=4)
    p.add_argument("--max-iter", type=int, default=50, help="Lloyd iteration cap of the cluster stage")
    p.add_argument("--actors", type=int, default=2, help="k-means actors")
    p.add_argument("--cpus", type=int, default=2, help="CPUs given to the local Ray")
    p.add_argument("--ingest", choices=("auto", "stage", "direct"), default="auto",
                   help="auto: the ingest stage if the synthetic reader exists, else direct")
    p.add_argument("--interest-sample", type=int, default=1000, help="users whose multi-interests are timed")
    p.add_argument("--dynamics", choices=("stage", "track"), default="stage",
                   help="stage: the whole dynamics stage (k-means per window, matching, drift, lift descriptions, "
                        "plots); track: its core only (interestrec.dynamics.track with the distributed k-means)")
    p.add_argument("--dyn-max-iter", type=int, default=100,
                   help="Lloyd iteration cap per window with --dynamics track (the stage uses 100)")
    p.add_argument("--no-plots", action="store_true", help="skip the dynamics plots")
    p.add_argument("--scratch", default=None, help="scratch directory (default: a new one under /tmp, removed)")
    p.add_argument("--keep", action="store_true", help="keep the scratch directory")
    p.add_argument("--json", default=None, help="also write the results as JSON here")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


# -- memory sampling ------------------------------------------------------------------------------
class PeakMemory:
    """Samples the driver's RSS and the summed PSS of its descendant (Ray) processes in a thread."""

    def __init__(self, interval: float = 0.2) -> None:
        import psutil

        self.proc = psutil.Process()
        self.interval = interval
        self.peak = {"driver": 0, "ray": 0}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _ray_bytes(self) -> int:
        import psutil

        total = 0
        for child in self.proc.children(recursive=True):
            try:
                try:
                    total += child.memory_full_info().pss  # shared object-store pages counted once
                except (psutil.AccessDenied, AttributeError):
                    total += child.memory_info().rss
            except (psutil.NoSuchProcess, psutil.ZombieProcess):
                pass
        return total

    def sample(self) -> None:
        self.peak["driver"] = max(self.peak["driver"], self.proc.memory_info().rss)
        self.peak["ray"] = max(self.peak["ray"], self._ray_bytes())

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    @contextmanager
    def phase(self, rows: dict, name: str):
        """Time phase ``name``; record its wall seconds and memory peaks into ``rows[name]`` and print them."""
        row = rows.setdefault(name, {})
        self.sample()
        self.peak = {"driver": 0, "ray": 0}
        self.sample()
        t0 = time.perf_counter()
        yield row
        row["seconds"] = time.perf_counter() - t0
        self.sample()
        row["driver_gib"] = self.peak["driver"] / 2**30
        row["ray_gib"] = self.peak["ray"] / 2**30
        print(f"[{name}] {row['seconds']:.1f}s, peak driver RSS {row['driver_gib']:.2f} GiB, "
              f"peak Ray PSS {row['ray_gib']:.2f} GiB", flush=True)


# -- ingest without a synthetic reader ------------------------------------------------------------
def ingest_direct(raw_dir: str, cfg, out_dir: str) -> dict:
    """The ingest artifacts of docs/artifacts.md from typed synthetic shards (see the module docstring)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from interestrec import artifacts
    from interestrec.data import (
        EVENT_KINDS,
        INTERACTION_KINDS,
        assign_windows,
        event_schema,
        leave_last_out,
        window_edges,
    )

    shards = sorted(glob.glob(os.path.join(raw_dir, "events-*.parquet")))
    if not shards:
        raise SystemExit(f"no events-*.parquet shards in {raw_dir}")
    items = artifacts.read_parquet(os.path.join(raw_dir, "items.parquet"))
    known = np.sort(items["item_id"].to_numpy())
    per_file, by_reason, keep_parts = {}, Counter(), []
    for path in shards:
        t = artifacts.read_parquet(path)
        u, i, ts = (t[c].to_numpy(zero_copy_only=False) for c in ("user_id", "item_id", "timestamp"))
        kind = pc.dictionary_encode(t["event"]).combine_chunks()
        kinds = np.array(kind.dictionary.to_pylist(), dtype=object)
        code = kind.indices.to_numpy(zero_copy_only=False)
        value = t["value"].to_numpy(zero_copy_only=False).astype(np.float64)
        reason = np.full(t.num_rows, "", dtype=object)
        is_rate = np.isin(code, np.flatnonzero(kinds == "rate"))
        checks = [
            ("missing_field", pc.is_null(t["user_id"]).to_numpy(zero_copy_only=False)
             | pc.is_null(t["item_id"]).to_numpy(zero_copy_only=False)
             | pc.is_null(t["timestamp"]).to_numpy(zero_copy_only=False)
             | pc.is_null(t["event"]).to_numpy(zero_copy_only=False) | (is_rate & np.isnan(value))),
            ("unknown_event", ~np.isin(code, np.flatnonzero(np.isin(kinds, EVENT_KINDS)))),
            ("timestamp_out_of_range", (ts < cfg.min_timestamp) | (ts > cfg.max_timestamp)),
            ("rating_out_of_range", is_rate & ((value < cfg.rating_min) | (value > cfg.rating_max))),
            ("unknown_item", known[np.minimum(np.searchsorted(known, i), len(known) - 1)] != i),
        ]
        for why, mask in checks:
            reason[(reason == "") & mask] = why
        bad = reason != ""
        name = os.path.basename(path)
        if bad.any():
            by_reason.update(reason[bad].tolist())
            rej = t.filter(pa.array(bad))
            cols = {c: pc.cast(rej[c], pa.string()) for c in rej.column_names}
            rows = pa.table({"source": [name] * rej.num_rows, "line": np.flatnonzero(bad) + 1, **cols,
                             "reason": reason[bad].tolist()})
            artifacts.write_parquet(artifacts.join(out_dir, "rejects", f"{name}.parquet"), rows)
        per_file[name] = {"rows_read": t.num_rows, "accepted": int((~bad).sum()), "rejected": int(bad.sum())}
        keep_parts.append(t.filter(pa.array(~bad)) if bad.any() else t)
    ev = pa.concat_tables(keep_parts).combine_chunks()
    del keep_parts

    user, item, ts = (ev[c].to_numpy() for c in ("user_id", "item_id", "timestamp"))
    kind = pc.dictionary_encode(ev["event"]).combine_chunks()
    kinds = np.array(kind.dictionary.to_pylist(), dtype=object)
    code = kind.indices.to_numpy().astype(np.int8)
    value = ev["value"].to_numpy(zero_copy_only=False).astype(np.float32)
    order = np.lexsort((item, ts, user))
    user, item, ts, code, value = user[order], item[order], ts[order], code[order], value[order]
    del ev, order
    # exact duplicates are adjacent after the sort only when they share (user, ts, item); compare the rest
    same = (user[1:] == user[:-1]) & (ts[1:] == ts[:-1]) & (item[1:] == item[:-1]) & (code[1:] == code[:-1])
    same &= (value[1:] == value[:-1]) | (np.isnan(value[1:]) & np.isnan(value[:-1]))
    dup = np.r_[False, same]
    if dup.any():
        by_reason["duplicate"] += int(dup.sum())
        user, item, ts, code, value = user[~dup], item[~dup], ts[~dup], code[~dup], value[~dup]
    event = kinds[code]  # object array sharing one str per kind
    split, too_short = leave_last_out(user, ts, item, event)
    edges = window_edges(ts, cfg.window_mode, cfg.n_windows, cfg.window_days)
    window = assign_windows(ts, edges)
    names = ("train", "valid", "test")
    split_code = ((split == "valid") * 1 + (split == "test") * 2).astype(np.int8)
    del split
    events = pa.table(
        [user, item, ts, pa.DictionaryArray.from_arrays(code, pa.array(kinds.tolist(), pa.string())).cast(pa.string()),
         pa.array(value, pa.float32(), mask=np.isnan(value)), pa.nulls(len(user), pa.string()),
         pa.DictionaryArray.from_arrays(split_code, pa.array(names)).cast(pa.string()), pa.array(window, pa.int32())],
        schema=event_schema(with_split=True),
    )
    artifacts.write_parquet(artifacts.join(out_dir, "events.parquet"), events)
    del events
    artifacts.write_parquet(artifacts.join(out_dir, "items.parquet"), items)
    n_win = len(edges) - 1
    per_window = np.bincount(window, minlength=n_win)
    artifacts.write_parquet(artifacts.join(out_dir, "windows.parquet"), pa.table({
        "window": pa.array(np.arange(n_win), pa.int32()), "start": edges[:-1], "end": edges[1:],
        "events": per_window.astype(np.int64)}))
    inter_codes = np.flatnonzero(np.isin(kinds, INTERACTION_KINDS))
    inter = np.isin(code, inter_codes)
    split_counts = np.bincount(split_code[inter], minlength=3)
    rows_read = sum(f["rows_read"] for f in per_file.values())
    return {
        "format": "synthetic (typed shards, direct)", "data": raw_dir, "rows_read": rows_read,
        "accepted": int(len(user)), "rejected": rows_read - int(len(user)),
        "rejected_by_reason": dict(sorted(by_reason.items())), "per_file": per_file,
        "users": int(np.count_nonzero(np.r_[True, user[1:] != user[:-1]])), "items": int(items.num_rows),
        "items_with_events": int(len(np.unique(item))),
        "events_by_kind": {str(k): int(c) for k, c in zip(kinds, np.bincount(code, minlength=len(kinds)))},
        "split": {"mode": "leave_last_out", **{n: int(c) for n, c in zip(names, split_counts)},
                  "users_too_short": int(too_short)},
        "windows": {"count": n_win, "mode": cfg.window_mode, "bounds": [[int(a), int(b)] for a, b in zip(edges[:-1], edges[1:])],
                    "events_per_window": per_window.tolist()},
        "time_range": [int(ts.min()), int(ts.max())],
    }


# -- pool-mode encode over the generator's item vectors ---------------------------------------------
def fast_event_weights(code: np.ndarray, kinds: np.ndarray, value: np.ndarray) -> np.ndarray:
    """``interestrec.encode.pooling.event_weights`` evaluated once per distinct (kind, rating) pair.

    Shapes:
        code: ``(n,)`` kind index into ``kinds``; value: ``(n,)`` (NaN = none); returns ``(n,)`` float64.
    """
    from interestrec.encode.pooling import event_weights

    key = code.astype(np.int64) * 1000 + np.where(np.isnan(value), 999, np.rint(value * 10)).astype(np.int64)
    uniq, first, inv = np.unique(key, return_index=True, return_inverse=True)
    return event_weights(kinds[code[first]], value[first].astype(np.float64))[inv.reshape(-1)]


def encode_pool(ingest_dir: str, raw_dir: str, cfg, out_dir: str, interest_sample: int, seed: int) -> dict:
    """Write ``encode/{items,users}.parquet`` (pool mode) and return the encode summary."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from interestrec import artifacts
    from interestrec.encode.interests import user_interests
    from interestrec.encode.pooling import decay, pool_user_vectors
    from interestrec.encode.stage import interest_type

    items = artifacts.read_parquet(artifacts.join(ingest_dir, "items.parquet"), columns=["item_id"])
    ids = items["item_id"].to_numpy()
    vecs = artifacts.read_npy(os.path.join(raw_dir, "item_vectors.npy"))
    if len(ids) != len(vecs) or not np.all(np.diff(ids) > 0):
        raise SystemExit("item_vectors.npy does not line up with items.parquet (sorted ids, one row each)")
    artifacts.write_parquet(artifacts.join(out_dir, "items.parquet"),
                            pa.table({"item_id": ids, "vector": artifacts.vectors_to_arrow(vecs)}))
    ev = artifacts.read_parquet(artifacts.join(ingest_dir, "events.parquet"),
                                columns=["user_id", "item_id", "timestamp", "event", "value", "split"])
    windows = artifacts.read_parquet(artifacts.join(ingest_dir, "windows.parquet"))
    user, item, ts = (ev[c].to_numpy() for c in ("user_id", "item_id", "timestamp"))
    kind = pc.dictionary_encode(ev["event"]).combine_chunks()
    kinds = np.array(kind.dictionary.to_pylist(), dtype=object)
    code = kind.indices.to_numpy()
    value = ev["value"].to_numpy(zero_copy_only=False).astype(np.float64)
    train = pc.equal(ev["split"], "train").to_numpy(zero_copy_only=False)
    del ev
    pos = np.searchsorted(ids, item)
    known = (pos < len(ids)) & (ids[np.minimum(pos, len(ids) - 1)] == item)
    unknown = int((~known).sum())
    # events are sorted by user: user index by run boundaries
    new = np.r_[True, user[1:] != user[:-1]]
    uidx = np.cumsum(new) - 1
    users = user[new]
    w = fast_event_weights(code, kinds, value)

    m = train & known
    ut, tt = uidx[m], ts[m]
    last = np.full(len(users), np.iinfo(np.int64).min, np.int64)
    starts = np.flatnonzero(np.r_[True, ut[1:] != ut[:-1]])
    last[ut[starts]] = np.maximum.reduceat(tt, starts)
    vec, n_ev = pool_user_vectors(ut, pos[m], tt, w[m], vecs, len(users), last[ut], cfg.half_life_days)
    has = n_ev > 0
    parts = [pa.table({"user_id": pa.array(users[has], pa.int64()), "window": pa.array(np.full(int(has.sum()), -1), pa.int32()),
                       "vector": artifacts.vectors_to_arrow(vec[has]), "n_events": pa.array(n_ev[has], pa.int32()),
                       "interests": pa.nulls(int(has.sum()), interest_type())})]
    n_train = int(has.sum())

    # multi-interests: timed on a seeded user sample (a per-user Python loop; not run for every user here)
    rng = np.random.default_rng(seed)
    sample = rng.choice(np.flatnonzero(has), min(interest_sample, n_train), replace=False)
    dw = w[m] * decay(tt, last[ut], cfg.half_life_days)
    bounds = np.searchsorted(ut, np.arange(len(users) + 1))
    pm = pos[m]
    t0 = time.perf_counter()
    n_int = []
    for u in sample.tolist():
        sel = slice(bounds[u], bounds[u + 1])
        n_int.append(len(user_interests(ids[pm[sel]], vecs[pm[sel]], dw[sel], cfg.max_interests,
                                        max_distance=cfg.interest_distance)))
    interest_us = 1e6 * (time.perf_counter() - t0) / max(len(sample), 1)
    del dw, pm

    rows = 0
    for wi, end in zip(windows["window"].to_pylist(), windows["end"].to_pylist()):
        mw = known & (ts < end) & (ts >= end - cfg.lookback_days * 86400)
        v, n = pool_user_vectors(uidx[mw], pos[mw], ts[mw], w[mw], vecs, len(users), end, cfg.half_life_days)
        keep = n >= 1
        rows += int(keep.sum())
        parts.append(pa.table({"user_id": pa.array(users[keep], pa.int64()),
                               "window": pa.array(np.full(int(keep.sum()), wi), pa.int32()),
                               "vector": artifacts.vectors_to_arrow(v[keep]), "n_events": pa.array(n[keep], pa.int32()),
                               "interests": pa.nulls(int(keep.sum()), interest_type())}))
    artifacts.write_parquet(artifacts.join(out_dir, "users.parquet"), pa.concat_tables(parts))
    return {
        "model": "synthetic item_vectors (generator ground truth; no language model in the scale run)",
        "dim": int(vecs.shape[1]), "items": int(len(ids)), "user_mode": "pool", "users": n_train,
        "users_without_train_events": int(len(users) - n_train), "events_unknown_item": unknown,
        "window_rows": rows, "interests": {"sampled_users": int(len(sample)), "us_per_user": round(interest_us, 1),
                                           "mean": round(float(np.mean(n_int)), 2) if n_int else 0.0},
    }


def check_pool_windows(out: str, ingest_dir: str, raw_dir: str, cfg, n_users: int = 300) -> float:
    """Max abs difference between the written per-window vectors of the first ``n_users`` users and the
    library reference ``window_user_vectors`` (0 when the fast path agrees; inf when the rows differ)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from interestrec import artifacts
    from interestrec.encode.pooling import window_user_vectors

    path = artifacts.join(ingest_dir, "events.parquet")
    head = pq.ParquetFile(path).read_row_group(0, columns=["user_id"])["user_id"].to_numpy()
    first = np.unique(head)[: min(n_users, max(len(np.unique(head)) - 1, 1))]  # users wholly inside row group 0
    ev = pq.read_table(path, filters=[("user_id", "<=", int(first[-1]))])
    ids = artifacts.read_parquet(artifacts.join(ingest_dir, "items.parquet"), columns=["item_id"])["item_id"].to_numpy()
    vecs = artifacts.read_npy(os.path.join(raw_dir, "item_vectors.npy"))
    windows = artifacts.read_parquet(artifacts.join(ingest_dir, "windows.parquet"))
    ref = window_user_vectors(ev, ids, vecs, windows, cfg.lookback_days, cfg.half_life_days)
    got = pq.read_table(artifacts.join(out, "users.parquet"), columns=["user_id", "window", "vector", "n_events"],
                        filters=[("user_id", "<=", int(first[-1])), ("window", ">=", 0)])
    got = got.filter(pc.is_in(got["user_id"], value_set=pa.array(first)))
    ref = ref.filter(pc.is_in(ref["user_id"], value_set=pa.array(first)))
    a = ref.take(np.lexsort((ref["window"].to_numpy(), ref["user_id"].to_numpy())))
    b = got.take(np.lexsort((got["window"].to_numpy(), got["user_id"].to_numpy())))
    if a.num_rows != b.num_rows or not np.array_equal(a["n_events"].to_numpy(), b["n_events"].to_numpy()):
        return float("inf")
    return float(np.abs(artifacts.arrow_to_vectors(a["vector"]) - artifacts.arrow_to_vectors(b["vector"])).max())


def dynamics_track(ctx, max_iter: int) -> dict:
    """The dynamics core at scale: warm-started distributed k-means per window, matching and drift.

    Writes ``dynamics/assignments.parquet`` and ``dynamics/centroids/w<window>.npy``; leaves out the
    stage's lift descriptions, lineage.json and plots.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    from interestrec import artifacts
    from interestrec.cluster import DistributedKMeans
    from interestrec.dynamics import track

    cfg, ccfg = ctx.config.dynamics, ctx.config.cluster
    users = artifacts.read_parquet(artifacts.join(ctx.stage_dir("encode"), "users.parquet"),
                                   columns=["user_id", "window", "vector", "n_events"])
    users = users.filter(pc.and_(pc.greater_equal(users["window"], 0), pc.greater_equal(users["n_events"], cfg.min_events)))
    win = users["window"].to_numpy()
    uid = users["user_id"].to_numpy()
    vec = artifacts.arrow_to_vectors(users["vector"])
    del users
    per_window = [(int(w), uid[win == w], vec[win == w]) for w in np.unique(win)]
    del vec
    k = int(artifacts.read_json(artifacts.join(ctx.stage_dir("cluster"), "summary.json"))["k"])
    init = artifacts.read_npy(artifacts.join(ctx.stage_dir("cluster"), "centroids.npy"))
    fits: list[dict] = []

    def fit(x, kk, c0, metric, seed):
        t0 = time.perf_counter()
        res = DistributedKMeans(num_actors=ccfg.num_actors).fit(x, kk, metric=metric, init_centroids=c0, seed=seed,
                                                                max_iter=max_iter, tol=1e-5)
        fits.append({"users": len(x), "n_iter": res.n_iter, "seconds": round(time.perf_counter() - t0, 2)})
        return res

    t0 = time.perf_counter()
    dyn = track(per_window, k, init, cfg.mode, cfg.decay, ccfg.metric, cfg.survive_threshold, cfg.split_threshold,
                ctx.config.seed, fit)
    track_s = time.perf_counter() - t0
    out = ctx.stage_dir("dynamics")
    rows = [pa.table({"user_id": w.user_ids, "window": pa.array(np.full(len(w.user_ids), w.window), pa.int32()),
                      "cluster": pa.array(dyn.user_stable(i).astype(np.int32))}) for i, w in enumerate(dyn.windows)]
    artifacts.write_parquet(artifacts.join(out, "assignments.parquet"), pa.concat_tables(rows))
    for w in dyn.windows:
        artifacts.write_npy(artifacts.join(out, "centroids", f"w{w.window}.npy"), w.centroids)
    per = [{"window": int(w.window), "users": int(len(w.user_ids)), **fits[i]} for i, w in enumerate(dyn.windows)]
    for i, d in enumerate(dyn.drift, start=1):
        per[i].update({"centroid_shift": d["centroid_shift"], "ari": d["ari"], "moved_share": d["moved_share"],
                       "label_counts": dict(Counter(d["labels"]["previous"].values()))})
    return {"k": k, "mode": cfg.mode, "windows": per, "clusters": int(len(np.unique(np.concatenate(dyn.stable_ids)))),
            "track_seconds": round(track_s, 2), "distributed": True}


# -- the run ----------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    import ray

    from interestrec import artifacts
    from interestrec.config import PipelineConfig
    from interestrec.data.readers import get_reader
    from interestrec.data.synthetic import generate, write_shards
    from interestrec.stages import StageContext, StageError, run_stage

    args = parse_args(argv)
    own_scratch = args.scratch is None
    scratch = args.scratch or tempfile.mkdtemp(prefix="interestrec-scale-", dir="/tmp")
    raw, out = os.path.join(scratch, "raw"), os.path.join(scratch, "out")
    use_stage = args.ingest == "stage"
    if args.ingest == "auto":
        try:
            get_reader("synthetic")
            use_stage = True
        except StageError:
            use_stage = False
    if args.ingest == "stage":
        get_reader("synthetic")  # a clear error when the synthetic reader is missing

    base = PipelineConfig(seed=args.seed)
    cfg = dataclasses.replace(
        base,
        ingest=dataclasses.replace(base.ingest, format="synthetic", window_mode="equal_count", n_windows=args.windows),
        encode=dataclasses.replace(base.encode, user_mode="pool", also_text=False, lookback_days=float(WINDOW_DAYS)),
        cluster=dataclasses.replace(base.cluster, k=args.k, max_iter=args.max_iter, num_actors=args.actors),
        dynamics=dataclasses.replace(base.dynamics, plots=not args.no_plots),
    )
    ctx = StageContext(out=out, config=cfg, data=raw)
    print(f"scale run: {args.users:,} users × {args.events} events (mean), {args.items:,} items, d={args.dim}, "
          f"K={args.k}, {args.windows} windows, {args.actors} k-means actors, Ray {args.cpus} CPUs; "
          f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}; scratch {scratch}", flush=True)

    mem = PeakMemory()
    mem.start()
    rows: dict[str, dict] = {}
    try:
        with mem.phase(rows, "generate") as r:
            data = generate(args.users, args.items, args.topics, args.windows, args.events, drift_rate=0.2,
                            dim=args.dim, seed=args.seed, window_seconds=WINDOW_DAYS * 86400)
            r["events"] = data.events.num_rows
            write_shards(data, raw, rows_per_shard=5_000_000)
            del data
        n_events = rows["generate"]["events"]
        print(f"generated {n_events:,} events in {rows['generate']['seconds']:.1f}s", flush=True)

        with mem.phase(rows, "ray start"):
            ray.init(address="local", num_cpus=args.cpus, include_dashboard=False, log_to_driver=False,
                     configure_logging=False, runtime_env={"env_vars": {"PYTHONWARNINGS": "ignore"}})
            ray.data.DataContext.get_current().enable_progress_bars = False
            logging.getLogger("ray.data").setLevel(logging.WARNING)

        with mem.phase(rows, "ingest") as r:
            if use_stage:
                s = run_stage(ctx, "ingest", force=True)
                r["note"] = "ingest stage (synthetic reader, Ray Data validation)"
            else:
                s = ingest_direct(raw, cfg.ingest, ctx.stage_dir("ingest"))
                artifacts.write_json(artifacts.join(ctx.stage_dir("ingest"), "summary.json"), s)
                r["note"] = "direct: typed checks + dedup + leave_last_out + windows"
        print(f"ingest: {s['accepted']:,} events accepted, {s['rejected']} rejected, {s['users']:,} users, "
              f"windows {s['windows']['events_per_window']}", flush=True)
        n_users = int(s["users"])

        with mem.phase(rows, "encode") as r:
            s = encode_pool(ctx.stage_dir("ingest"), raw, cfg.encode, ctx.stage_dir("encode"), args.interest_sample, args.seed)
            artifacts.write_json(artifacts.join(ctx.stage_dir("encode"), "summary.json"), s)
            r["note"] = f"pool mode, generator item_vectors (d={s['dim']}); interests timed on a sample"
        interest = s["interests"]
        diff = check_pool_windows(ctx.stage_dir("encode"), ctx.stage_dir("ingest"), raw, cfg.encode)
        print(f"encode: {s['users']:,} train vectors + {s['window_rows']:,} window rows; per-window vectors vs "
              f"window_user_vectors (300 users): max |diff| {diff:.2e}; multi-interests {interest['us_per_user']:.0f} "
              f"µs/user on {interest['sampled_users']} users (≈ {interest['us_per_user'] * n_users / 1e6:.0f} s for all "
              "users, not run)", flush=True)
        if not diff < 1e-5:
            raise SystemExit(f"pooled per-window vectors disagree with the reference (max |diff| {diff})")

        with mem.phase(rows, "cluster") as r:
            s = run_stage(ctx, "cluster", force=True)
            r["note"] = (f"DistributedKMeans K={s['k']} × {args.actors} actors, {s['n_iter']} iterations "
                         f"(max_iter {args.max_iter}), {s['ms_per_iter']:.0f} ms/iter")
        print(f"cluster: K={s['k']}, {s['n_iter']} iterations, {s['ms_per_iter']:.0f} ms/iteration, "
              f"silhouette {s['silhouette']}", flush=True)

        with mem.phase(rows, "dynamics") as r:
            if args.dynamics == "stage":
                s = run_stage(ctx, "dynamics", force=True)
                r["note"] = (f"stage: {len(s['windows'])} windows, {'distributed' if s['distributed'] else 'local'} "
                             f"warm k-means, matching, lift descriptions{'' if args.no_plots else ', plots'}")
            else:
                s = dynamics_track(ctx, args.dyn_max_iter)
                artifacts.write_json(artifacts.join(ctx.stage_dir("dynamics"), "summary.json"), s)
                its = "/".join(str(w["n_iter"]) for w in s["windows"])
                r["note"] = (f"track: {len(s['windows'])} windows of warm distributed k-means ({its} iterations, "
                             f"max_iter {args.dyn_max_iter}), matching, drift; no descriptions/plots")
        moved = [round(w["moved_share"], 3) for w in s["windows"][1:]]
        print(f"dynamics: {s['clusters']} stable clusters over {len(s['windows'])} windows; moved share {moved}", flush=True)
    finally:
        mem.stop()
        if ray.is_initialized():
            ray.shutdown()
        if own_scratch and not args.keep:
            shutil.rmtree(scratch, ignore_errors=True)

    stages = ("ingest", "encode", "cluster", "dynamics")
    total = sum(rows[n]["seconds"] for n in stages)
    print(f"\n{'phase':10s} {'wall s':>8s} {'share':>6s} {'µs/user':>8s} {'driver GiB':>10s} {'Ray GiB':>8s}  note")
    for name, r in rows.items():
        share = f"{100 * r['seconds'] / total:5.1f}%" if name in stages else "     -"
        print(f"{name:10s} {r['seconds']:8.1f} {share:>6s} {1e6 * r['seconds'] / n_users:8.1f} "
              f"{r['driver_gib']:10.2f} {r['ray_gib']:8.2f}  {r.get('note', '')}")
    bound = max(stages, key=lambda n: rows[n]["seconds"])
    print(f"pipeline (ingest..dynamics) {total:.1f}s = {1e6 * total / n_users:.1f} µs/user; bounded by {bound} "
          f"({100 * rows[bound]['seconds'] / total:.0f}% of the wall time, {1e6 * rows[bound]['seconds'] / n_users:.1f} µs/user); "
          f"peak driver RSS {max(r['driver_gib'] for r in rows.values()):.2f} GiB, "
          f"peak Ray PSS {max(r['ray_gib'] for r in rows.values()):.2f} GiB")
    if args.json:
        artifacts.write_json(args.json, {"args": vars(args), "users": n_users, "events": n_events, "phases": rows,
                                         "pipeline_seconds": total, "bound_by": bound})
    print(f"users_per_s={n_users / total:.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
