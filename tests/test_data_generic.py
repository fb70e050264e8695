"""Generic event logs (Parquet, CSV, JSONL with a column mapping) and synthetic shards through the ingest stage."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq

from interestrec.data import ColumnMapping, IngestConfig, load_ingest
from interestrec.data.stage import ingest

ROWS = [(1, 10, 1_600_000_000, "click"), (1, 11, 1_600_000_100, "view"), (1, 12, 1_600_000_200, "purchase"),
        (2, 10, 1_600_000_300, "view"), (2, 99, None, "view"), (3, 10, 1_600_000_400, "teleport")]
MAP = ColumnMapping(user_id="uid", item_id="sku", timestamp="ts", event="kind", value=None, text=None)


def table():
    return pa.table({"uid": [r[0] for r in ROWS], "sku": [r[1] for r in ROWS], "ts": [r[2] for r in ROWS], "kind": [r[3] for r in ROWS]})


def check(summary):
    assert summary["rows_read"] == 6 == summary["accepted"] + summary["rejected"]
    assert summary["rejected_by_reason"] == {"missing_field": 1, "unknown_event": 1}
    assert summary["events_by_kind"] == {"click": 1, "purchase": 1, "view": 2}


def test_parquet_csv_jsonl_logs(ray_local, tmp_path):
    pq.write_table(table(), tmp_path / "log.parquet")
    table().to_pandas().to_csv(tmp_path / "log.csv", index=False)
    (tmp_path / "log.jsonl").write_text("\n".join(json.dumps(r) for r in table().to_pylist()))
    for name, fmt in (("log.parquet", "parquet"), ("log.csv", "csv"), ("log.jsonl", "jsonl")):
        s = ingest(str(tmp_path / name), IngestConfig(format=fmt, columns=MAP), str(tmp_path / f"out-{fmt}"))
        check(s)
        assert s["items"] == 3  # catalog derived from the ids seen


def test_synthetic_shards(ray_local, tmp_path):
    from interestrec.data.synthetic import generate, write_shards

    d = generate(n_users=100, n_items=80, n_clusters=4, n_windows=3, events_per_user=10, seed=0)
    write_shards(d, str(tmp_path / "syn"), rows_per_shard=500)
    s = ingest(str(tmp_path / "syn"), IngestConfig(), str(tmp_path / "out"))
    assert s["format"] == "synthetic" and s["rejected"] == 0 and s["accepted"] == d.events.num_rows
    assert load_ingest(str(tmp_path / "out")).items.num_rows == 80
