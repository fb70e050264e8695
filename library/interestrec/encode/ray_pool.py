"""Pool-mode user rows on Ray: one task per ``events.parquet`` part, each writing its own ``users.parquet`` part.

The ingest's parts are user-disjoint (a hash partition by user), so each task sees whole histories and
:func:`interestrec.encode.users.pool_rows` gives it exactly the rows the whole log would give its users.
The item vectors travel once through the object store; the driver holds the per-part counts and writes
``_manifest.json`` last — never an event or a user vector.
"""

from __future__ import annotations

import numpy as np

from interestrec import artifacts
from interestrec.encode.config import EncodeConfig
from interestrec.encode.users import PoolCounts, pool_rows


def _pool_part(events_path: str, out_path: str, item_ids: np.ndarray, train_vecs: np.ndarray,
               serve_vecs: np.ndarray, windows, cfg: EncodeConfig) -> tuple[int, PoolCounts]:
    """One task: read a part, compute its users' rows, write them; returns ``(rows written, counts)``."""
    from interestrec.encode.users import EVENT_COLUMNS

    events = artifacts.read_parquet(events_path)
    events = events.select([c for c in EVENT_COLUMNS if c in events.column_names])
    table, counts = pool_rows(events, item_ids, train_vecs, serve_vecs, windows, cfg)
    if table.num_rows:  # one row group per window (rows come sorted by it): readers of one window skip the rest
        window = table["window"].to_numpy()
        bounds = np.flatnonzero(np.diff(window)) + 1
        artifacts.write_parquet(out_path, table, row_groups=np.diff([0, *bounds, len(window)]).tolist())
    return table.num_rows, counts


def pool_users(events_path: str, out_dir: str, item_ids: np.ndarray, train_vecs: np.ndarray, serve_vecs: np.ndarray,
               windows, cfg: EncodeConfig, num_cpus: float = 1.0) -> PoolCounts:
    """Write ``out_dir`` (a directory dataset: ``part-NNNNN.parquet`` + ``_manifest.json``) from every part of
    ``events_path`` (a file or a directory dataset) and return the summed counts.

    Shapes:
        item_ids: ``(n_items,)`` sorted; train_vecs, serve_vecs: ``(n_items, d)``.
    """
    import ray

    artifacts.remove(out_dir)
    artifacts.makedirs(out_dir)
    files = artifacts.parquet_files(events_path)
    names = [f"part-{i:05d}.parquet" for i in range(len(files))]
    shared = [ray.put(x) for x in (item_ids, train_vecs, serve_vecs, windows)]
    task = ray.remote(_pool_part).options(num_cpus=num_cpus)
    refs = [task.remote(f, artifacts.join(out_dir, n), *shared, cfg) for f, n in zip(files, names)]
    results = ray.get(refs)
    written = [n for n, (rows, _) in zip(names, results) if rows]
    rows = sum(r for r, _ in results)
    artifacts.write_manifest(out_dir, written, rows)
    parts = [c for _, c in results]
    return PoolCounts(*(sum(getattr(c, f) for c in parts) for f in ("users", "window_rows",
                                                                     "users_without_train_events",
                                                                     "events_unknown_item", "interests")),
                      max((c.max_interests for c in parts), default=0))
