"""The ``ingest`` stage: read → validate (Ray Data) → de-duplicate → split → windows → artifacts."""

from __future__ import annotations

from collections import Counter

import numpy as np

from interestrec import artifacts
from interestrec.data.config import IngestConfig
from interestrec.data.readers import detect_format, get_reader
from interestrec.data.schema import INTERACTION_KINDS, event_schema, item_schema
from interestrec.data.split import cutoff_split, leave_last_out
from interestrec.data.validate import mark_duplicates, validate_events
from interestrec.data.windows import assign_windows, window_edges
from interestrec.stages import StageContext, StageError

REJECT_COLUMNS = ["source", "line", "raw", "reason", "user_id", "item_id", "timestamp", "event", "value", "text"]


class ValidateBatch:
    """Ray Data ``map_batches`` callable: holds the catalog ids once per worker, validates each batch."""

    def __init__(self, cfg: IngestConfig, known_items: np.ndarray | None):
        self.cfg = cfg
        self.known = None if known_items is None else np.sort(known_items)

    def __call__(self, batch):
        return validate_events(batch, self.cfg, self.known)


def validated_table(ds, cfg: IngestConfig, known_items: np.ndarray | None):
    """Run validation over a raw event dataset on the cluster and collect the result as one Arrow table."""
    import pyarrow as pa
    import ray

    out = ds.map_batches(ValidateBatch, fn_constructor_args=(cfg, known_items), batch_format="pandas",
                         compute=ray.data.ActorPoolStrategy(min_size=1, max_size=2))
    tables = [t for t in ray.get(out.to_arrow_refs()) if t.num_rows]
    if not tables:
        return None
    return pa.concat_tables(tables, promote_options="permissive")


def ingest(data_path: str, cfg: IngestConfig, out_dir: str) -> dict:
    """Read, validate, split and window ``data_path``; write ``out_dir/{events,items,windows}.parquet``.

    Returns the ingest summary (see docs/artifacts.md). Nothing is lost: every row read is either in
    ``events.parquet`` or in ``rejects/<source>.parquet`` with its reason, per file.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    fmt = detect_format(data_path) if cfg.format == "auto" else cfg.format
    reading = get_reader(fmt)(data_path, cfg)
    known = None if reading.items is None else reading.items.column("item_id").to_numpy()

    per_file: dict[str, dict] = {}
    frames = []
    for source, ds in reading.events.items():
        t = validated_table(ds, cfg, known)
        if t is None:
            per_file[source] = {"rows_read": 0, "accepted": 0, "rejected": 0}
            continue
        frames.append(t.to_pandas())
    import pandas as pd

    cols = ["source", "line", "user_id", "item_id", "timestamp", "event", "value", "text", "reason", "raw"]
    allrows = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=cols)
    allrows = allrows.sort_values(["source", "line"], kind="stable", ignore_index=True)
    ok = allrows["reason"].isna().to_numpy()
    acc = allrows[ok]
    dup = mark_duplicates(acc["user_id"].to_numpy(), acc["item_id"].to_numpy(), acc["timestamp"].to_numpy(),
                          acc["event"].to_numpy(), acc["value"].to_numpy(), acc["text"].to_numpy())
    reasons = allrows["reason"].to_numpy(dtype=object).copy()
    reasons[np.flatnonzero(ok)[dup]] = "duplicate"
    allrows["reason"] = reasons
    ok = pd.isna(allrows["reason"]).to_numpy()

    # rejects: the original row + reason, one parquet per source file
    rejected = allrows[~ok]
    by_reason = Counter(rejected["reason"])
    for source in sorted(set(allrows["source"])):
        rows_src = allrows["source"] == source
        n_acc = int((rows_src & ok).sum())
        per_file[source] = {"rows_read": int(rows_src.sum()), "accepted": n_acc, "rejected": int(rows_src.sum()) - n_acc}
    for source, (n_read, item_rejects) in reading.item_rows.items():
        per_file[source] = {"rows_read": n_read, "accepted": n_read - item_rejects.num_rows, "rejected": item_rejects.num_rows}
        by_reason.update(item_rejects.column("reason").to_pylist())
        if item_rejects.num_rows:
            artifacts.write_parquet(artifacts.join(out_dir, "rejects", f"{source}.parquet"), item_rejects)
    for source, grp in rejected.groupby("source"):
        table = pa.Table.from_pandas(
            grp.assign(value=grp["value"].astype("string"), user_id=None, item_id=None, timestamp=None)[
                ["source", "line", "raw", "reason"]
            ],
            preserve_index=False,
        )
        artifacts.write_parquet(artifacts.join(out_dir, "rejects", f"{source}.parquet"), table)

    acc = allrows[ok]
    if len(acc) == 0:
        raise StageError(f"no valid events in {data_path}: every row was rejected ({dict(by_reason)}); see {out_dir}/rejects/")
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
    text = acc["text"].to_numpy(dtype=object)
    events = pa.table(
        [user, item, ts, pa.array(event, pa.string()), pa.array(value, pa.float32(), mask=np.isnan(value)),
         pa.array(text, pa.string()), pa.array(split, pa.string()), pa.array(window, pa.int32())],
        schema=event_schema(with_split=True),
    )
    artifacts.write_parquet(artifacts.join(out_dir, "events.parquet"), events)

    items = reading.items
    if items is None:  # generic logs without a catalog: items are the ids seen
        ids = np.unique(item)
        items = pa.table([ids, pa.array([str(i) for i in ids]), pa.nulls(len(ids), pa.int32()),
                          pa.array([[]] * len(ids), pa.list_(pa.string())), pa.array([[]] * len(ids), pa.list_(pa.string()))],
                         schema=item_schema())
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
    }


def run(ctx: StageContext) -> dict:
    """Stage entry point (see ``interestrec.stages``)."""
    if not ctx.data:
        raise StageError("the ingest stage needs --data")
    return ingest(ctx.data, ctx.config.ingest, ctx.stage_dir("ingest"))
