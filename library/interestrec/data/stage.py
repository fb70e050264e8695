"""The ``ingest`` stage: read → validate (Ray Data) → shuffle by user → resolve, de-duplicate, split (one task per
partition) → window edges → indices and windows, written by the workers.

Distributed to the end (see :mod:`interestrec.data.shuffle`): the driver holds per-block and per-partition
statistics, the id maps and the catalog, never the events. :mod:`interestrec.data.reference` computes the same
outputs in the driver and is the reference this stage is tested equal to.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from interestrec import artifacts
from interestrec.data.config import IngestConfig
from interestrec.data.partition import Resolution
from interestrec.data.readers import Reading, detect_format, get_reader
from interestrec.data.resolve import catalog_map, decide_id_type, int_map, unit_from_votes
from interestrec.data.schema import item_schema
from interestrec.data.shuffle import (
    count_le,
    finish_partitions,
    n_partitions,
    process_partitions,
    split_blocks,
    validate_block,
)
from interestrec.data.windows import window_edges_from
from interestrec.ids import IdMap
from interestrec.stages import StageContext, StageError


class PhaseClock:
    """Wall seconds of the stage's consecutive phases (``laps``: name → seconds) and the driver's peak RSS (MB)
    at the end of each (``peaks``)."""

    def __init__(self) -> None:
        import time

        self._now = time.perf_counter
        self._t = self._now()
        self.laps: dict[str, float] = {}
        self.peaks: dict[str, float] = {}

    def lap(self, name: str) -> None:
        import resource

        t = self._now()
        self.laps[name] = round(t - self._t, 2)
        self.peaks[name] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
        self._t = t


def expected_counts(reading: Reading) -> dict[str, int | None]:
    """Per event file, the record count of the independent counting pass (waits for its tasks)."""
    import ray

    return {name: int(ray.get(v)) if isinstance(v, ray.ObjectRef) else v for name, v in reading.expected.items()}


def check_counts(files: list[str], expected: dict[str, int | None], block_stats: list[dict]) -> dict[str, int]:
    """Per event file, records seen by the parser; stops when the independent count disagrees."""
    seen: Counter = Counter()
    for s in block_stats:
        seen.update(s["records"])
    counts = {}
    for name in files:
        want, got = expected.get(name), int(seen.get(name, 0))
        if want is not None and want != got:
            raise StageError(f"{name}: the independent count found {want} records but {got} were read "
                             "(accepted + rejected); the file's quoting or encoding is inconsistent")
        counts[name] = got
    return counts


def resolution(reading: Reading, cfg: IngestConfig, block_stats: list[dict]) -> tuple[Resolution, np.ndarray | None]:
    """The dataset-wide decisions (id types, timestamp unit, catalog map) from the blocks' statistics; also each
    catalog row's item index (``None`` without a catalog)."""
    cat_keys = np.asarray(reading.items.column("item_id").to_pylist(), dtype=object) if reading.items is not None else None
    id_type = cfg.id_type if cfg.id_type != "auto" else reading.id_type

    def kind(flag: str, extra: list[np.ndarray]) -> str:
        if id_type != "auto":
            return decide_id_type([], id_type)
        all_int = all(s[flag] for s in block_stats) and decide_id_type(extra, "auto") == "int"
        return "int" if all_int else "string"

    votes: Counter = Counter()
    for s in block_stats:
        votes.update(s["votes"])
    item_kind = kind("item_int", [cat_keys] if cat_keys is not None else [])
    catalog, cat_index = catalog_map(cat_keys, item_kind) if cat_keys is not None else (None, None)
    res = Resolution(unit=unit_from_votes({u: votes.get(u, 0) for u in ("s", "ms", "us", "ns")}, cfg),
                     user_kind=kind("user_int", []), item_kind=item_kind, catalog=catalog,
                     tags_from_events=reading.tags_from_events)
    return res, cat_index


def id_map(values: list[np.ndarray], kind: str) -> IdMap:
    """The map of one id column from the partitions' sorted unique accepted ids."""
    allv = np.concatenate(values) if values else np.zeros(0, np.int64)
    if kind == "int":
        return int_map(allv.astype(np.int64))
    return IdMap.dense(allv)


def catalog_items(reading: Reading, cat_index: np.ndarray, tags: Counter):
    """The catalog in the item schema, its ``tags`` from tag events when the format says so."""
    import pyarrow as pa

    items = reading.items
    col = items.column("tags")
    if reading.tags_from_events:
        per_item: dict[int, list] = {}
        for (i, t), c in tags.items():
            per_item.setdefault(i, []).append((-c, t))
        col = pa.array([[t for _, t in sorted(per_item.get(int(i), []))] for i in cat_index], pa.list_(pa.string()))
    return pa.table([pa.array(cat_index, pa.int64()), items.column("title"), items.column("year"),
                     items.column("genres"), col, descriptions(items)], schema=item_schema(description=True))


def descriptions(items):
    """The catalog's ``description`` column, all null when the format has none."""
    import pyarrow as pa

    if "description" in items.column_names:
        return items.column("description")
    return pa.nulls(items.num_rows, pa.string())


def log_items(item_map: IdMap):
    """Items of a log without a catalog: the ids seen, titled by their original id."""
    import pyarrow as pa

    ids = np.arange(len(item_map), dtype=np.int64) if item_map.kind == "dense" else item_map.ids.astype(np.int64)
    n = len(ids)
    return pa.table([ids, pa.array([str(x) for x in item_map.to_original(ids)], pa.string()), pa.nulls(n, pa.int32()),
                     pa.array([[]] * n, pa.list_(pa.string())), pa.array([[]] * n, pa.list_(pa.string())),
                     pa.nulls(n, pa.string())], schema=item_schema(description=True))


def ingest(data_path: str, cfg: IngestConfig, out_dir: str) -> dict:
    """Read, validate, map ids, split and window ``data_path`` on the cluster; the workers write
    ``out_dir/events.parquet/`` and ``out_dir/rejects/<source>.parquet/`` (directory datasets, committed by a
    ``_manifest.json``), the driver ``items``, ``windows`` and ``ids/{users,items}.parquet``.

    Returns the ingest summary (see docs/artifacts.md). Nothing is lost: every record read is either an event or
    a reject with its reason, per file, and each file's record count is checked against an independent count.
    """
    import resource

    import pyarrow as pa

    clock = PhaseClock()
    fmt = detect_format(data_path) if cfg.format == "auto" else cfg.format
    reading = get_reader(fmt)(data_path, cfg)
    expected = expected_counts(reading)
    n_parts = n_partitions(sum(v for v in expected.values() if v is not None), cfg)

    blocks = []
    for ds in reading.events.values():
        out = ds.map_batches(validate_block, fn_kwargs={"cfg": cfg, "n_parts": n_parts}, batch_format="pyarrow")
        blocks += out.to_arrow_refs()
    clock.lap("read_validate")
    block_stats, parts = split_blocks(blocks, n_parts, cfg)
    del blocks
    clock.lap("shuffle_map")
    per_file_read = check_counts(reading.files, expected, block_stats)
    if not sum(per_file_read.values()):
        raise StageError(f"no records in {data_path}")
    res, cat_index = resolution(reading, cfg, block_stats)

    accepted, rejects, pstats, ts_refs = process_partitions(parts, cfg, res)
    del parts
    clock.lap("partitions")
    n_acc = sum(s["n"] for s in pstats)
    user_map = id_map([s["users"] for s in pstats], res.user_kind)
    item_map = res.catalog if res.catalog is not None else id_map([s["items"] for s in pstats], res.item_kind)
    lo = min((s["ts_min"] for s in pstats if s["n"]), default=0)
    hi = max((s["ts_max"] for s in pstats if s["n"]), default=0)
    edges = window_edges_from(count_le(ts_refs), n_acc, lo, hi, cfg.window_mode, cfg.n_windows, cfg.window_days)
    clock.lap("ids_edges")

    events_dir, rejects_dir = artifacts.join(out_dir, "events.parquet"), artifacts.join(out_dir, "rejects")
    artifacts.remove(events_dir)
    artifacts.remove(rejects_dir)
    written = finish_partitions(accepted, rejects, user_map, item_map, res, edges, events_dir, rejects_dir)
    del accepted, rejects, ts_refs
    clock.lap("write")
    names = [f"part-{p:05d}.parquet" for p in range(n_parts)]
    reject_parts: dict[str, list[str]] = {}
    for name, w in zip(names, written):
        for source in w["rejects"]:
            reject_parts.setdefault(source, []).append(name)
    for source, files in reject_parts.items():
        artifacts.write_manifest(artifacts.join(rejects_dir, f"{source}.parquet"), files,
                                 sum(w["rejects"].get(source, 0) for w in written))

    by_reason: Counter = Counter()
    for s in pstats:
        by_reason.update(s["reasons"])
    per_file: dict[str, dict] = {}
    for source, n_read in per_file_read.items():
        n_ok = sum(s["accepted"].get(source, 0) for s in pstats)
        per_file[source] = {"rows_read": n_read, "accepted": n_ok, "rejected": n_read - n_ok}
    for source, (n_read, item_rejects) in reading.item_rows.items():
        per_file[source] = {"rows_read": n_read, "accepted": n_read - item_rejects.num_rows, "rejected": item_rejects.num_rows}
        by_reason.update(item_rejects.column("reason").to_pylist())
        if item_rejects.num_rows:
            artifacts.write_parquet(artifacts.join(rejects_dir, f"{source}.parquet"), item_rejects)
    user_map.to_parquet(artifacts.join(out_dir, "ids", "users.parquet"))
    item_map.to_parquet(artifacts.join(out_dir, "ids", "items.parquet"))
    if n_acc == 0:
        raise StageError(f"no valid events in {data_path}: every row was rejected ({dict(by_reason)}); see {out_dir}/rejects/")
    artifacts.write_manifest(events_dir, [n for n, w in zip(names, written) if w["rows"]], n_acc)

    tags: Counter = Counter()
    for s in pstats:
        tags.update(s["tags"])
    items = catalog_items(reading, cat_index, tags) if res.catalog is not None else log_items(item_map)
    artifacts.write_parquet(artifacts.join(out_dir, "items.parquet"), items)
    n_win = len(edges) - 1
    per_window = np.sum([w["windows"] for w in written], axis=0).astype(np.int64)
    artifacts.write_parquet(artifacts.join(out_dir, "windows.parquet"), pa.table({
        "window": pa.array(np.arange(n_win), pa.int32()), "start": edges[:-1], "end": edges[1:], "events": per_window}))

    def total(key: str) -> Counter:
        c: Counter = Counter()
        for s in pstats:
            c.update(s[key])
        return c

    rows_read = sum(f["rows_read"] for f in per_file.values())
    accepted_rows = sum(f["accepted"] for f in per_file.values())
    split_counts = total("split")
    return {
        "format": fmt,
        "data": str(data_path),
        "rows_read": rows_read,
        "accepted": accepted_rows,
        "rejected": rows_read - accepted_rows,
        "rejected_by_reason": dict(sorted(by_reason.items())),
        "texts_cut": int(sum(s["texts_cut"] for s in pstats)),
        "per_file": per_file,
        "users": len(user_map),
        "items": int(items.num_rows),
        "items_with_events": int(len(np.unique(np.concatenate([s["items"] for s in pstats])))),
        "events_by_kind": dict(sorted(total("events_by_kind").items())),
        "split": {
            "mode": "cutoff" if cfg.cutoff is not None else "leave_last_out",
            "train": int(split_counts.get("train", 0)),
            "valid": int(split_counts.get("valid", 0)),
            "test": int(split_counts.get("test", 0)),
            "users_too_short": int(sum(s["too_short"] for s in pstats)),
            "users": {k: int(sum(s["users_by_split"][k] for s in pstats)) for k in ("train", "valid", "test")},
            "other_events": dict(sorted(total("other_split").items())),
        },
        "windows": {
            "count": n_win,
            "mode": cfg.window_mode,
            "bounds": [[int(a), int(b)] for a, b in zip(edges[:-1], edges[1:])],
            "events_per_window": per_window.tolist(),
        },
        "time_range": [int(lo), int(hi)],
        "ids": {"users": user_map.kind, "items": item_map.kind, "users_mapped": len(user_map), "items_mapped": len(item_map)},
        "timestamp_unit": res.unit,
        "ignored_files": reading.ignored,
        "partitions": n_parts,
        "phase_seconds": clock.laps,
        "phase_driver_peak_rss_mb": clock.peaks,
        "driver_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def run(ctx: StageContext) -> dict:
    """Stage entry point (see ``interestrec.stages``)."""
    if not ctx.data:
        raise StageError("the ingest stage needs --data")
    return ingest(ctx.data, ctx.config.ingest, ctx.stage_dir("ingest"))
