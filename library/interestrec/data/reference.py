"""The ingest computed in the driver: the obvious reference the distributed stage (:mod:`.stage`) is tested equal to.

Read → validate (Ray Data) → collect every row into one pandas frame → count check → ids and time →
de-duplicate → split → windows. Fine for small data; the driver holds every event.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from interestrec import artifacts
from interestrec.data.config import IngestConfig
from interestrec.data.errors import DataError
from interestrec.data.partition import REJECT_COLUMNS
from interestrec.data.readers import Reading, detect_format, get_reader
from interestrec.data.resolve import catalog_map, decide_id_type, map_ids, resolve_timestamps
from interestrec.data.schema import INTERACTION_KINDS, event_schema, item_schema
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


def check_counts(reading: Reading, allrows) -> dict[str, int]:
    """Per event file, records seen by the parser; stops when the independent count disagrees."""
    import ray

    seen = allrows["source"].value_counts().to_dict() if len(allrows) else {}
    counts = {}
    for name in reading.files:
        expected = reading.expected.get(name)
        expected = int(ray.get(expected)) if isinstance(expected, ray.ObjectRef) else expected
        got = int(seen.get(name, 0))
        if expected is not None and expected != got:
            raise DataError(f"{name}: the independent count found {expected} records but {got} were read "
                             "(accepted + rejected); the file's quoting or encoding is inconsistent")
        counts[name] = got
    return counts


def item_tags(item_index, tag_items: np.ndarray, tag_text: np.ndarray) -> list[list[str]]:
    """Per catalog row, its tags from tag events (lower-cased, most frequent first, then alphabetical)."""
    counts: dict[int, Counter] = {}
    for i, t in zip(tag_items, tag_text):
        if t is not None and str(t).strip():
            counts.setdefault(int(i), Counter())[str(t).strip().lower()] += 1
    return [[t for t, _ in sorted(counts.get(int(i), Counter()).items(), key=lambda kv: (-kv[1], kv[0]))]
            for i in item_index]


def ingest_in_driver(data_path: str, cfg: IngestConfig, out_dir: str) -> dict:
    """Read, validate, map ids, split and window ``data_path``; write ``out_dir/{events,items,windows}.parquet``
    and ``out_dir/ids/{users,items}.parquet``.

    Returns the ingest summary (see docs/artifacts.md). Nothing is lost: every record read is either in
    ``events.parquet`` or in ``rejects/<source>.parquet`` with its reason, per file, and each file's record
    count is checked against an independent count.
    """
    import resource

    import pandas as pd
    import pyarrow as pa
    import pyarrow.compute as pc

    fmt = detect_format(data_path) if cfg.format == "auto" else cfg.format
    reading = get_reader(fmt)(data_path, cfg)

    frames = [f for f in (validated_frame(ds, cfg) for ds in reading.events.values()) if f is not None]
    if not frames:
        raise DataError(f"no records in {data_path}")
    allrows = pd.concat(frames, ignore_index=True).sort_values(["source", "record"], kind="stable", ignore_index=True)
    per_file_read = check_counts(reading, allrows)
    reason = allrows["reason"].to_numpy(dtype=object).copy()

    # ids: one type per column over events and catalog; indices through interestrec.ids
    cat_keys = np.asarray(reading.items.column("item_id").to_pylist(), dtype=object) if reading.items is not None else None
    id_type = cfg.id_type if cfg.id_type != "auto" else reading.id_type
    user_kind = decide_id_type([allrows["user_key"].to_numpy(dtype=object)], id_type)
    item_kind = decide_id_type([allrows["item_key"].to_numpy(dtype=object)] + ([cat_keys] if cat_keys is not None else []), id_type)
    item_map = None
    if cat_keys is not None:
        item_map, cat_index = catalog_map(cat_keys, item_kind)
    ts, unit = resolve_timestamps(allrows, cfg, reason)
    item_idx, item_map = map_ids(allrows["item_key"].to_numpy(dtype=object), item_kind, reason, known=item_map)
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
    by_reason = Counter(rejected["reason"])
    per_file: dict[str, dict] = {}
    for source, n_read in per_file_read.items():
        n_acc = int(((allrows["source"] == source).to_numpy() & ok).sum())
        per_file[source] = {"rows_read": n_read, "accepted": n_acc, "rejected": n_read - n_acc}
    for source, (n_read, item_rejects) in reading.item_rows.items():
        per_file[source] = {"rows_read": n_read, "accepted": n_read - item_rejects.num_rows, "rejected": item_rejects.num_rows}
        by_reason.update(item_rejects.column("reason").to_pylist())
        if item_rejects.num_rows:
            artifacts.write_parquet(artifacts.join(out_dir, "rejects", f"{source}.parquet"), item_rejects)
    for source, grp in rejected.groupby("source"):
        table = pa.Table.from_pandas(grp[REJECT_COLUMNS].astype({"raw": "string", "reason": "string"}), preserve_index=False)
        artifacts.write_parquet(artifacts.join(out_dir, "rejects", f"{source}.parquet"), table)

    # identity maps list exactly the accepted ids; dense maps keep the indices already given out
    if user_map.kind == "identity":
        user_map = IdMap.identity(allrows["user_id"].to_numpy()[ok])
    if item_map.kind == "identity" and cat_keys is None:
        item_map = IdMap.identity(allrows["item_id"].to_numpy()[ok])
    user_map.to_parquet(artifacts.join(out_dir, "ids", "users.parquet"))
    item_map.to_parquet(artifacts.join(out_dir, "ids", "items.parquet"))

    acc = allrows[ok]
    texts_cut = int(acc["cut"].to_numpy(dtype=bool).sum())
    if len(acc) == 0:
        raise DataError(f"no valid events in {data_path}: every row was rejected ({dict(by_reason)}); see {out_dir}/rejects/")
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
    artifacts.write_parquet(artifacts.join(out_dir, "events.parquet"), events)

    items = reading.items
    if items is None:  # generic logs without a catalog: items are the ids seen, titled by their original id
        ids = np.unique(item)
        items = pa.table([ids, pa.array([str(x) for x in item_map.to_original(ids)], pa.string()), pa.nulls(len(ids), pa.int32()),
                          pa.array([[]] * len(ids), pa.list_(pa.string())), pa.array([[]] * len(ids), pa.list_(pa.string())),
                          pa.nulls(len(ids), pa.string())], schema=item_schema(description=True))
    else:
        tags = items.column("tags")
        if reading.tags_from_events:
            is_tag = event == "tag"
            tags = pa.array(item_tags(cat_index, item[is_tag], text[is_tag]), pa.list_(pa.string()))
        desc = items.column("description") if "description" in items.column_names else pa.nulls(items.num_rows, pa.string())
        items = pa.table([pa.array(cat_index, pa.int64()), items.column("title"), items.column("year"),
                          items.column("genres"), tags, desc], schema=item_schema(description=True))
    artifacts.write_parquet(artifacts.join(out_dir, "items.parquet"), items)

    n_win = len(edges) - 1
    per_window = np.bincount(window, minlength=n_win)
    windows = pa.table({"window": pa.array(np.arange(n_win), pa.int32()), "start": edges[:-1], "end": edges[1:],
                        "events": per_window.astype(np.int64)})
    artifacts.write_parquet(artifacts.join(out_dir, "windows.parquet"), windows)

    rows_read = sum(f["rows_read"] for f in per_file.values())
    accepted = sum(f["accepted"] for f in per_file.values())
    inter = np.isin(event, INTERACTION_KINDS)
    split_counts = Counter(split[inter])
    users_by_split = {name: int(len(np.unique(user[inter & (split == name)]))) for name in ("train", "valid", "test")}
    return {
        "format": fmt,
        "data": str(data_path),
        "rows_read": rows_read,
        "accepted": accepted,
        "rejected": rows_read - accepted,
        "rejected_by_reason": dict(sorted(by_reason.items())),
        "texts_cut": texts_cut,
        "per_file": per_file,
        "users": int(len(np.unique(user))),
        "items": int(items.num_rows),
        "items_with_events": int(len(np.unique(item))),
        "events_by_kind": dict(sorted(Counter(event).items())),
        "split": {
            "mode": "cutoff" if cfg.cutoff is not None else "leave_last_out",
            "train": int(split_counts.get("train", 0)),
            "valid": int(split_counts.get("valid", 0)),
            "test": int(split_counts.get("test", 0)),
            "users_too_short": int(too_short),
            "users": users_by_split,
            "other_events": dict(sorted(Counter(split[~inter]).items())),
        },
        "windows": {
            "count": n_win,
            "mode": cfg.window_mode,
            "bounds": [[int(a), int(b)] for a, b in zip(edges[:-1], edges[1:])],
            "events_per_window": per_window.tolist(),
        },
        "time_range": [int(pc.min(events["timestamp"]).as_py()), int(pc.max(events["timestamp"]).as_py())],
        "ids": {"users": user_map.kind, "items": item_map.kind, "users_mapped": len(user_map), "items_mapped": len(item_map)},
        "timestamp_unit": unit,
        "ignored_files": reading.ignored,
        "driver_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }

