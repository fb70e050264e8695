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


def _served_store(path):
    """A store as a serving deployment leaves it: two live items (one nobody acted on yet) and events on
    catalogue items (10, 20, 30, 40) and on the live item 777001."""
    from interestrec.serving.stores import open_store

    s = open_store(f"sqlite://{path}")
    s.put_items([{"item_id": 777001, "title": "Orbit of the Lost Fleet", "genres": ["Space"],
                  "description": "astronauts aboard a starship", "vector": [0.6, 0.8]},
                 {"item_id": 777002, "title": "Salt and Smoke", "genres": ["Cooking"], "description": None,
                  "vector": [1.0, 0.0]}], "items-1")
    day = 86400
    for u, items in ((1, [10, 777001, 20, 777001]), (2, [30, 777001, 40]), (3, [20, 10, 30])):
        s.append(u, [{"item_id": i, "timestamp": 1_700_000_000 + j * day, "event": "rate" if j % 2 else "view",
                      "value": 4.0 if j % 2 else None} for j, i in enumerate(items)], f"u{u}")
    return s


def test_a_served_stores_export_is_a_dataset_the_next_run_ingests(ray_local, tmp_path):
    import shutil

    from interestrec.data.reference import ingest_in_driver
    from interestrec.encode.phases import phase_item_texts
    from interestrec.serving.store import export_dataset

    export = tmp_path / "export"
    assert export_dataset(_served_store(tmp_path / "ev.db"), str(export)) == {"events": 10, "items": 2}
    assert sorted(p.name for p in export.iterdir()) == ["events.parquet", "live_items.parquet"]

    s = ingest(str(export), IngestConfig(), str(tmp_path / "out"))  # no settings: found as it is
    assert s["format"] == "parquet" and s["accepted"] == 10 and s["rejected"] == 0, s
    got = load_ingest(str(tmp_path / "out"))
    items = {r["item_id"]: r for r in got.items.to_pylist()}
    assert sorted(items) == [10, 20, 30, 40, 777001, 777002]  # the live items, acted on or not, and the log's
    assert (items[777001]["title"], items[777001]["genres"], items[777001]["description"]) == \
        ("Orbit of the Lost Fleet", ["Space"], "astronauts aboard a starship")
    assert (items[777002]["title"], items[777002]["description"]) == ("Salt and Smoke", None)
    assert items[10]["title"] == "10" and items[10]["description"] is None  # no catalog: titled by their id
    assert got.events.filter(pa.compute.equal(got.events["item_id"], 777001)).num_rows == 3
    ref = ingest_in_driver(str(export), IngestConfig(), str(tmp_path / "ref"))
    assert ref["accepted"] == 10 and load_ingest(str(tmp_path / "ref")).items.equals(got.items)
    ids, texts = phase_item_texts(got.items, got.events, "serve")  # what the encode stage encodes (default: no descriptions)
    assert texts[list(ids).index(777001)] == "Orbit of the Lost Fleet. Genres: Space."
    ids, texts = phase_item_texts(got.items, got.events, "serve", description_words=2)  # POST /items's text, cut alike
    assert texts[list(ids).index(777001)] == "Orbit of the Lost Fleet. Genres: Space. astronauts aboard …"
    assert texts[list(ids).index(777002)] == "Salt and Smoke. Genres: Cooking."  # no description

    # beside the published catalogue: one catalog (its row wins for an id both have), events must name one
    both = tmp_path / "with-catalog"
    shutil.copytree(export, both)
    pq.write_table(pa.table({"item_id": [10, 20, 30, 777002], "title": ["Heat", "Alien", "Big", "Published"],
                             "genres": [["Crime"], ["Space"], ["Comedy"], ["Cooking"]]}), both / "items.parquet")
    s = ingest(str(both), IngestConfig(), str(tmp_path / "out2"))
    assert s["accepted"] == 9 and s["rejected_by_reason"] == {"unknown_item": 1}  # item 40: in neither
    items = {r["item_id"]: (r["title"], r["description"]) for r in load_ingest(str(tmp_path / "out2")).items.to_pylist()}
    assert items == {10: ("Heat", None), 20: ("Alien", None), 30: ("Big", None), 777002: ("Published", None),
                     777001: ("Orbit of the Lost Fleet", "astronauts aboard a starship")}
    ingest_in_driver(str(both), IngestConfig(), str(tmp_path / "ref2"))
    assert load_ingest(str(tmp_path / "ref2")).items.equals(load_ingest(str(tmp_path / "out2")).items)


def test_the_export_command_writes_the_dataset_and_names_the_next_step(tmp_path):
    import os
    import subprocess
    import sys

    import pyarrow.parquet as pq

    _served_store(tmp_path / "events.db").close()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {**os.environ, "PYTHONPATH": os.path.join(root, "library")}
    out = tmp_path / "next"
    r = subprocess.run([sys.executable, "-m", "interestrec.cli", "export", "--store", f"sqlite://{tmp_path}/events.db",
                        "--out", str(out)], capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 0, r.stderr
    assert "10 events and 2 live items" in r.stdout and f"interestrec run --data {out}" in r.stdout
    assert pq.read_table(out / "events.parquet").num_rows == 10
    items = pq.read_table(out / "live_items.parquet").to_pydict()
    assert sorted(items["item_id"]) == [777001, 777002] and "Orbit of the Lost Fleet" in items["title"]
    bad = subprocess.run([sys.executable, "-m", "interestrec.cli", "export", "--out", str(out)],
                         capture_output=True, text=True, timeout=120, env=env)
    assert bad.returncode == 2 and "--store" in bad.stderr
