"""The ingest computed in the driver: the obvious reference the distributed stage (:mod:`.stage`) is tested equal to.

Read → validate (Ray Data) → collect every row into one pandas frame → count check → ids and time →
de-duplicate → split → windows. Fine for small data; the driver holds every event. Around this engine, the
count check, per-file accounting, items and summary are shared with the stage (:mod:`interestrec.data.glue`).
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from interestrec import artifacts, layout
from interestrec.data.config import IngestConfig
from interestrec.data.errors import DataError
from interestrec.data.glue import (
    Tallies,
    account_files,
    catalog_keys,
    check_accepted,
    check_counts,
    count_tags,
    expected_counts,
    items_table,
    summary,
    write_id_maps,
    write_windows,
)
from interestrec.data.livecatalog import live_index, live_keys, live_values
from interestrec.data.partition import REJECT_COLUMNS
from interestrec.data.readers import detect_format, get_reader
from interestrec.data.resolve import catalog_map, decide_id_type, map_ids, resolve_timestamps
from interestrec.data.schema import INTERACTION_KINDS, SPLITS, event_schema
from interestrec.data.split import cutoff_split, leave_last_out
from interestrec.data.validate import mark_duplicates, validate_events
from interestrec.data.windows import assign_windows, window_edges
from interestrec.ids import IdMap


def validated_frame(ds, cfg: IngestConfig):
    """Run per-row validation over a raw event dataset on the cluster; the result as one pandas frame."""
    import pyarrow as pa
    import ray

    out = ds.map_batches(validate_events, fn_kwargs={"cfg": cfg}, batch_format="pandas")
    tables = [t for t in ray.get(out.to_arrow_refs()) if t.num_rows]
    if not tables:
        return None
    return pa.concat_tables(tables, promote_options="permissive").to_pandas()


def ingest_in_driver(data_path: str, cfg: IngestConfig, out_dir: str) -> dict:
    """Read, validate, map ids, split and window ``data_path``; write ``out_dir/{events,items,windows}.parquet``
    and ``out_dir/ids/{users,items}.parquet``.

    Returns the ingest summary (see docs/artifacts.md). Nothing is lost: every record read is either in
    ``events.parquet`` or in ``rejects/<source>.parquet`` with its reason, per file, and each file's record
    count is checked against an independent count.
    """
    import pandas as pd
    import pyarrow as pa

    fmt = detect_format(data_path) if cfg.format == "auto" else cfg.format
    reading = get_reader(fmt)(data_path, cfg)

    frames = [f for f in (validated_frame(ds, cfg) for ds in reading.events.values()) if f is not None]
    if not frames:
        raise DataError(f"no records in {data_path}")
    allrows = pd.concat(frames, ignore_index=True).sort_values(["source", "record"], kind="stable", ignore_index=True)
    per_file_read = check_counts(reading.files, expected_counts(reading), Counter(allrows["source"].to_numpy(dtype=object)))
    reason = allrows["reason"].to_numpy(dtype=object).copy()

    # ids: one type per column over events and catalog; indices through interestrec.ids
    cat_keys, live = catalog_keys(reading), live_keys(reading)  # a live catalogue only without a catalog
    id_type = cfg.id_type if cfg.id_type != "auto" else reading.id_type
    user_kind = decide_id_type([allrows["user_key"].to_numpy(dtype=object)], id_type)
    item_kind = decide_id_type([allrows["item_key"].to_numpy(dtype=object)] + [k for k in (cat_keys, live) if k is not None],
                               id_type)
    item_map, cat_index = catalog_map(cat_keys, item_kind) if cat_keys is not None else (None, None)
    ts, unit = resolve_timestamps(allrows, cfg, reason)
    extra = live_values(live, item_kind) if live is not None else None
    item_idx, item_map = map_ids(allrows["item_key"].to_numpy(dtype=object), item_kind, reason, known=item_map, extra=extra)
    user_idx, user_map = map_ids(allrows["user_key"].to_numpy(dtype=object), user_kind, reason)
    allrows["user_id"], allrows["item_id"], allrows["timestamp"] = user_idx, item_idx, ts
    ok = pd.isna(reason)
    acc = allrows[ok]
    dup = mark_duplicates(acc["user_id"].to_numpy(), acc["item_id"].to_numpy(), acc["timestamp"].to_numpy(),
                          acc["event"].to_numpy(), acc["value"].to_numpy(), acc["text"].to_numpy())
    reason[np.flatnonzero(ok)[dup]] = "duplicate"
    allrows["reason"] = reason
    ok = pd.isna(allrows["reason"]).to_numpy()

    # rejects: the original record + reason, one parquet per source file
    rejected = allrows[~ok]
    accounts = account_files(per_file_read, Counter(allrows["source"].to_numpy(dtype=object)[ok]),
                             Counter(rejected["reason"]), reading, artifacts.join(out_dir, layout.INGEST_REJECTS_DIR))
    for source, grp in rejected.groupby("source"):
        table = pa.Table.from_pandas(grp[REJECT_COLUMNS].astype({"raw": "string", "reason": "string"}), preserve_index=False)
        artifacts.write_parquet(artifacts.join(out_dir, layout.INGEST_REJECTS.format(source=source)), table)

    # identity maps list exactly the accepted ids; dense maps keep the indices already given out
    if user_map.kind == "identity":
        user_map = IdMap.identity(allrows["user_id"].to_numpy()[ok])
    if item_map.kind == "identity" and cat_keys is None:
        more = [] if extra is None else [extra]
        item_map = IdMap.identity(np.concatenate([allrows["item_id"].to_numpy(np.int64)[ok], *more]))
    write_id_maps(out_dir, user_map, item_map)

    acc = allrows[ok]
    texts_cut = int(acc["cut"].to_numpy(dtype=bool).sum())
    check_accepted(len(acc), accounts, data_path, out_dir)
    acc = acc.sort_values(["user_id", "timestamp", "item_id"], kind="stable", ignore_index=True)
    user = acc["user_id"].to_numpy(np.int64)
    item = acc["item_id"].to_numpy(np.int64)
    ts = acc["timestamp"].to_numpy(np.int64)
    event = acc["event"].to_numpy(dtype=object)
    if cfg.cutoff is not None:
        split, too_short = cutoff_split(ts, cfg.cutoff), 0
    else:
        split, too_short = leave_last_out(user, ts, item, event)
    edges = window_edges(ts, cfg.window_mode, cfg.n_windows, cfg.window_days)
    window = assign_windows(ts, edges)
    value = acc["value"].to_numpy(np.float32)
    text = np.array([v if isinstance(v, str) else None for v in acc["text"]], dtype=object)
    events = pa.table(
        [user, item, ts, pa.array(event, pa.string()), pa.array(value, pa.float32(), mask=np.isnan(value)),
         pa.array(text, pa.string()), pa.array(split, pa.string()), pa.array(window, pa.int32())],
        schema=event_schema(with_split=True),
    )
    artifacts.write_parquet(artifacts.join(out_dir, layout.INGEST_EVENTS), events)

    is_tag = event == "tag"
    tags = count_tags(item[is_tag], text[is_tag]) if reading.tags_from_events else Counter()
    live_idx = live_index(live, item_map, item_kind)
    log_ids = np.unique(np.r_[item, live_idx[live_idx >= 0]]) if live_idx is not None else np.unique(item)
    items = items_table(reading, cat_index, tags, log_ids, item_map, live_idx)
    artifacts.write_parquet(artifacts.join(out_dir, layout.INGEST_ITEMS), items)
    per_window = np.bincount(window, minlength=len(edges) - 1)
    write_windows(out_dir, edges, per_window)

    inter = np.isin(event, INTERACTION_KINDS)
    tallies = Tallies(users=int(len(np.unique(user))), items_with_events=int(len(np.unique(item))), texts_cut=texts_cut,
                      events_by_kind=Counter(event), split=Counter(split[inter]), other_split=Counter(split[~inter]),
                      users_by_split={k: int(len(np.unique(user[inter & (split == k)]))) for k in SPLITS},
                      too_short=int(too_short), time_range=(int(ts.min()), int(ts.max())))
    return summary(fmt, data_path, cfg, reading, accounts, tallies, items.num_rows, edges, per_window,
                   (user_map, item_map), unit)
