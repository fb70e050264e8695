"""The ``ingest`` stage: read → validate (Ray Data) → shuffle by user → resolve, de-duplicate, split (one task per
partition) → window edges → indices and windows, written by the workers.

Distributed to the end (see :mod:`interestrec.data.shuffle`): the driver holds per-block and per-partition
statistics, the id maps and the catalog, never the events. :mod:`interestrec.data.reference` computes the same
outputs in the driver and is the reference this stage is tested equal to; the two differ only in their engines:
the count check, per-file accounting, items and summary around them come from :mod:`interestrec.data.glue`.
"""

from __future__ import annotations

import numpy as np

from interestrec import artifacts, layout
from interestrec.data.config import IngestConfig
from interestrec.data.glue import (
    account_files,
    catalog_keys,
    check_accepted,
    check_counts,
    expected_counts,
    items_table,
    summary,
    tally,
    write_id_maps,
    write_windows,
)
from interestrec.data.livecatalog import live_index, live_keys, live_values
from interestrec.data.partition import Resolution, partition_tallies
from interestrec.data.readers import Reading, detect_format, get_reader
from interestrec.data.resolve import catalog_map, decide_id_type, int_map, unit_from_votes
from interestrec.data.shuffle import (
    commit_rejects,
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


def resolution(reading: Reading, cfg: IngestConfig, block_stats: list[dict]) -> tuple[Resolution, np.ndarray | None]:
    """The dataset-wide decisions (id types, timestamp unit, catalog map) from the blocks' statistics; also each
    catalog row's item index (``None`` without a catalog)."""
    cat_keys = catalog_keys(reading)
    id_type = cfg.id_type if cfg.id_type != "auto" else reading.id_type

    def kind(flag: str, extra: list[np.ndarray]) -> str:
        if id_type != "auto":
            return decide_id_type([], id_type)
        all_int = all(s[flag] for s in block_stats) and decide_id_type(extra, "auto") == "int"
        return "int" if all_int else "string"

    votes = tally(block_stats, "votes")
    item_kind = kind("item_int", [k for k in (cat_keys, live_keys(reading)) if k is not None])
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


def ingest(data_path: str, cfg: IngestConfig, out_dir: str) -> dict:
    """Read, validate, map ids, split and window ``data_path`` on the cluster; the workers write
    ``out_dir/events.parquet/`` and ``out_dir/rejects/<source>.parquet/`` (directory datasets, committed by a
    ``_manifest.json``), the driver ``items``, ``windows`` and ``ids/{users,items}.parquet``.

    Returns the ingest summary (see docs/artifacts.md). Nothing is lost: every record read is either an event or
    a reject with its reason, per file, and each file's record count is checked against an independent count.
    """
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
    per_file_read = check_counts(reading.files, expected, tally(block_stats, "records"), error=StageError)
    if not sum(per_file_read.values()):
        raise StageError(f"no records in {data_path}")
    res, cat_index = resolution(reading, cfg, block_stats)

    accepted, rejects, pstats, ts_refs = process_partitions(parts, cfg, res)
    del parts
    clock.lap("partitions")
    n_acc = sum(s["n"] for s in pstats)
    user_map = id_map([s["users"] for s in pstats], res.user_kind)
    live = live_keys(reading)  # without a catalog, the live catalogue's items join the log's
    extra = [live_values(live, res.item_kind)] if live is not None and res.catalog is None else []
    item_map = res.catalog if res.catalog is not None else id_map([s["items"] for s in pstats] + extra, res.item_kind)
    lo = min((s["ts_min"] for s in pstats if s["n"]), default=0)
    hi = max((s["ts_max"] for s in pstats if s["n"]), default=0)
    edges = window_edges_from(count_le(ts_refs), n_acc, lo, hi, cfg.window_mode, cfg.n_windows, cfg.window_days)
    clock.lap("ids_edges")

    events_dir, rejects_dir = artifacts.join(out_dir, layout.INGEST_EVENTS), artifacts.join(out_dir, layout.INGEST_REJECTS_DIR)
    artifacts.remove(events_dir)
    artifacts.remove(rejects_dir)
    written = finish_partitions(accepted, rejects, user_map, item_map, res, edges, events_dir, rejects_dir)
    del accepted, rejects, ts_refs
    clock.lap("write")
    names = [f"part-{p:05d}.parquet" for p in range(n_parts)]
    commit_rejects(written, names, rejects_dir)
    accounts = account_files(per_file_read, tally(pstats, "accepted"), tally(pstats, "reasons"), reading, rejects_dir)
    write_id_maps(out_dir, user_map, item_map)
    check_accepted(n_acc, accounts, data_path, out_dir, error=StageError)
    artifacts.write_manifest(events_dir, [n for n, w in zip(names, written) if w["rows"]], n_acc)

    log_ids = np.arange(len(item_map), dtype=np.int64) if item_map.kind == "dense" else item_map.ids.astype(np.int64)
    items = items_table(reading, cat_index, tally(pstats, "tags"), log_ids, item_map,
                        live_index(live, item_map, res.item_kind))
    artifacts.write_parquet(artifacts.join(out_dir, layout.INGEST_ITEMS), items)
    per_window = np.sum([w["windows"] for w in written], axis=0).astype(np.int64)
    write_windows(out_dir, edges, per_window)
    tallies = partition_tallies(pstats, len(user_map), (lo, hi))
    return summary(fmt, data_path, cfg, reading, accounts, tallies, items.num_rows, edges, per_window,
                   (user_map, item_map), res.unit, extra={"partitions": n_parts, "phase_seconds": clock.laps,
                                                          "phase_driver_peak_rss_mb": clock.peaks})


def run(ctx: StageContext) -> dict:
    """Stage entry point (see ``interestrec.stages``)."""
    if not ctx.data:
        raise StageError("the ingest stage needs --data")
    return ingest(ctx.data, ctx.config.ingest, ctx.stage_dir("ingest"))
