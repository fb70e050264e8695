"""The distributed ingest on Ray: validation in Ray Data, a hash shuffle by user as Ray tasks, writes by workers.

The plain steps live in :mod:`interestrec.data.partition`; this module only places them on the cluster:

- Ray Data validates every raw block and tags each row with its user's partition (:func:`validate_block`);
- one task per block splits it by partition and computes the block's statistics (:func:`_split_task`);
- one task per partition resolves, de-duplicates and splits whole user histories (:func:`_process_task`);
  its rows stay in the object store, only statistics come back;
- :func:`select_ranks` finds the equal-count window edges exactly with counting tasks over the partitions'
  sorted timestamps (the driver never sees a timestamp array);
- one task per partition maps ids to indices, assigns windows and writes ``part-NNNNN.parquet`` of
  ``events.parquet`` and of each file's rejects (:func:`_finish_task`).

The driver holds counts, the id maps (one entry per user and item) and the catalog — never the events.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from interestrec import artifacts
from interestrec.data.config import IngestConfig
from interestrec.data.partition import (
    Resolution,
    block_stats,
    finish_partition,
    partition_of,
    process_partition,
    scatter,
)
from interestrec.ids import IdMap

ROWS_PER_PARTITION = 1_000_000


def n_partitions(records: int, cfg: IngestConfig) -> int:
    """Partitions for ``records`` input records: ``cfg.partitions`` or one per ~1M records (at most 512)."""
    if cfg.partitions:
        return cfg.partitions
    return int(min(512, max(1, -(-records // ROWS_PER_PARTITION))))


def validate_block(batch, cfg: IngestConfig, n_parts: int):
    """Ray Data batch function (``batch_format="pyarrow"``): :func:`~interestrec.data.validate_arrow.validate_table`
    plus each row's ``part``."""
    import pyarrow as pa

    from interestrec.data.validate_arrow import validate_table

    out = validate_table(batch, cfg)
    return out.append_column("part", pa.array(partition_of(out.column("user_key").combine_chunks(), n_parts)))


def _remote(fn: Callable, **options):
    import ray

    return ray.remote(fn).options(**options) if options else ray.remote(fn)


def _split(block, n_parts: int, cfg: IngestConfig):
    stats = block_stats(block.select(["source", "user_key", "item_key", "ts_int", "ts_is_int", "ts_float",
                                      "reason"]).to_pandas(), cfg)
    return (stats, *scatter(block, n_parts))


def _process(cfg: IngestConfig, res: Resolution, *parts):
    import pyarrow as pa

    frame = pa.concat_tables(parts, promote_options="permissive").to_pandas()
    accepted, rejects, stats = process_partition(frame, cfg, res)
    ts = np.sort(accepted.column("timestamp").to_numpy())
    return accepted, rejects, stats, ts


def _count_le(sorted_ts: np.ndarray, values: np.ndarray) -> np.ndarray:
    return np.searchsorted(sorted_ts, values, side="right").astype(np.int64)


def _finish(accepted, rejects, user_map: IdMap, item_map: IdMap, res: Resolution, edges: np.ndarray,
            events_dir: str, rejects_dir: str, part: int) -> dict:
    table = finish_partition(accepted, user_map, item_map, res, edges)
    name = f"part-{part:05d}.parquet"
    if table.num_rows:
        artifacts.write_parquet(artifacts.join(events_dir, name), table)
    written = {}
    for source, grp in rejects.groupby("source", sort=True):
        artifacts.write_parquet(artifacts.join(rejects_dir, f"{source}.parquet", name), grp.reset_index(drop=True)
                                .astype({"raw": "string", "reason": "string"}))
        written[str(source)] = len(grp)
    windows = np.bincount(table.column("window").to_numpy(), minlength=len(edges) - 1) if table.num_rows else \
        np.zeros(len(edges) - 1, np.int64)
    return {"rows": table.num_rows, "windows": windows, "rejects": written}


def split_blocks(block_refs: list, n_parts: int, cfg: IngestConfig) -> tuple[list[dict], list[list]]:
    """Run the split task on every validated block: per block its statistics (fetched) and ``n_parts`` refs."""
    import ray

    task = _remote(_split, num_returns=n_parts + 1)
    outs = [task.remote(b, n_parts, cfg) for b in block_refs]
    stats = ray.get([o[0] for o in outs])
    return stats, [[o[1 + p] for o in outs] for p in range(n_parts)]


def process_partitions(parts: list[list], cfg: IngestConfig, res: Resolution) -> tuple[list, list, list[dict], list]:
    """One task per partition; returns refs of the accepted and rejected rows and of the sorted timestamps,
    and the fetched statistics."""
    import ray

    task = _remote(_process, num_returns=4)
    outs = [task.remote(cfg, res, *refs) for refs in parts]
    stats = ray.get([o[2] for o in outs])
    return [o[0] for o in outs], [o[1] for o in outs], stats, [o[3] for o in outs]


def count_le(ts_refs: list) -> Callable[[np.ndarray], np.ndarray]:
    """``values → #timestamps <= value`` over every partition (one counting task per partition)."""
    import ray

    task = _remote(_count_le, num_cpus=0.25)

    def count(values: np.ndarray) -> np.ndarray:
        return np.sum(ray.get([task.remote(r, values) for r in ts_refs]), axis=0)

    return count


def finish_partitions(accepted: list, rejects: list, user_map: IdMap, item_map: IdMap, res: Resolution,
                      edges: np.ndarray, events_dir: str, rejects_dir: str) -> list[dict]:
    """One task per partition writes its ``events`` part and its rejects; returns what each wrote."""
    import ray

    task = _remote(_finish)
    umap, imap = ray.put(user_map), ray.put(item_map)
    return ray.get([task.remote(a, r, umap, imap, res, edges, events_dir, rejects_dir, p)
                    for p, (a, r) in enumerate(zip(accepted, rejects))])


def commit_rejects(written: list[dict], names: list[str], rejects_dir: str) -> None:
    """Commit each event file's rejects dataset (``rejects_dir/<source>.parquet/``): its parts, in partition
    order, and its row count, from what :func:`finish_partitions` reports (``names``: the partitions' part files)."""
    parts: dict[str, list[str]] = {}
    for name, w in zip(names, written):
        for source in w["rejects"]:
            parts.setdefault(source, []).append(name)
    for source, files in parts.items():
        artifacts.write_manifest(artifacts.join(rejects_dir, f"{source}.parquet"), files,
                                 sum(w["rejects"].get(source, 0) for w in written))
