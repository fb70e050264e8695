"""Amazon review logs through the real ingest: the 2014 layout (Python-literal metadata), the 2023 layout without
metadata, layout sniffing, and clear errors for logs that fit no mapping (also through the command line)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pandas as pd
import pytest

from fixtures.ingest import assert_same_outputs
from interestrec.data import ColumnMapping, IngestConfig, load_ingest
from interestrec.data.errors import DataError
from interestrec.data.readers import detect_format
from interestrec.data.stage import ingest
from interestrec.ids import load_id_maps
from interestrec.stages import StageError

LONG = " ".join(f"word{i % 10}" for i in range(500)) + " " + "y" * 100  # 3,099 characters


def review(user: str, asin: str, ts: int | None, overall: float, text: str, summary: str, **extra) -> str:
    rec = {"reviewerID": user, "asin": asin, "reviewerName": "J. Doe", "helpful": [0, 0], "reviewText": text,
           "overall": overall, "summary": summary, "unixReviewTime": ts, "reviewTime": "09 13, 2009", **extra}
    if ts is None:
        del rec["unixReviewTime"]
    return json.dumps(rec)


def write_2014(root: Path) -> Path:
    """``reviews_Toys_5.json.gz`` (7 reviews, one 3,099-character text, one item without metadata, one review with
    only ``reviewTime``) and ``meta_Toys.json.gz`` (Python literals: tuples, None, both quote kinds; one strict
    JSON line; one line that does not parse; one item without a title)."""
    root.mkdir(parents=True)
    reviews = [
        review("A1", "0000031852", 1252800000, 5.0, "My daughter loves it.", "Great tutu"),
        review("A1", "B00NOMETA1", 1252800100, 4.0, LONG, "Long one!"),
        review("A1", "B000000002", 1252800200, 3.0, "", "Only a summary"),
        review("A2", "0000031852", 1252800300, 2.0, "Fell apart.", ""),
        review("A2", "B000000002", None, 4.0, "Dated by reviewTime only", "Fine"),
        review("A3", "B000000003", 1252800500, 1.0, "Meh", "Meh"),
        review("A3", "B000000004", 1252800600, 5.0, "No title in meta", "Good"),
    ]
    (root / "reviews_Toys_5.json.gz").write_bytes(gzip.compress("\n".join(reviews).encode() + b"\n"))
    meta = [
        "{'asin': '0000031852', 'title': 'Girls Ballet Tutu Zebra Hot Pink', 'price': 3.17, 'imUrl': "
        "'http://ecx.images-amazon.com/images/I/51fAmVkTbyL._SY300_.jpg', 'related': {'also_bought': ('B00JHONN1S',)}, "
        "'salesRank': {'Toys & Games': 211836}, 'brand': 'Coxlures', 'categories': [['Sports & Outdoors', 'Other Sports', "
        "'Dance'], ['Sports & Outdoors', 'Dance']], 'description': \"It's a tutu \\\"for\\\" dancing\"}",
        "{'asin': 'B000000002', 'title': \"Bob's Blocks\", 'categories': [['Toys & Games', 'Blocks']], 'brand': None, "
        "'description': None}",
        json.dumps({"asin": "B000000003", "title": "Strict JSON Kite", "categories": [["Toys & Games", "Kites"]]}),
        "{'asin': 'B000000004', 'categories': [['Toys & Games']], 'salesRank': {}}",
        "{'asin': 'B000000005', 'title': 'Broken line', 'categories': [['Toys'",
        "{'asin': __import__('os').getcwd(), 'title': 'not a literal'}",
    ]
    (root / "meta_Toys.json.gz").write_bytes(gzip.compress("\n".join(meta).encode() + b"\n"))
    return root


def test_amazon_2014_every_review_accepted_and_equal_to_the_reference(ray_local, tmp_path):
    from interestrec.data.reference import ingest_in_driver

    root = write_2014(tmp_path / "toys")
    cfg = IngestConfig(partitions=2)
    s = ingest(str(root), cfg, str(tmp_path / "out"))
    assert s["format"] == "amazon-2014" and s["timestamp_unit"] == "s"
    assert s["per_file"]["reviews_Toys_5.json.gz"] == {"rows_read": 7, "accepted": 7, "rejected": 0}
    assert s["per_file"]["meta_Toys.json.gz"] == {"rows_read": 6, "accepted": 4, "rejected": 2}
    assert s["rejected_by_reason"] == {"malformed_record": 2} and s["texts_cut"] == 1
    assert s["users"] == 3 and s["items"] == 5 and s["items_with_events"] == 5  # 4 from meta + 1 reviewed only
    users, items = load_id_maps(str(tmp_path / "out"))
    assert users.kind == items.kind == "dense"  # ASINs such as 0000031852 stay text
    art = load_ingest(str(tmp_path / "out"))
    ev = art.events.to_pandas()
    ev["asin"] = items.to_original(ev.item_id.to_numpy())
    text = dict(zip(zip(users.to_original(ev.user_id.to_numpy()), ev.asin), ev.text))
    assert text[("A1", "0000031852")] == "Great tutu. My daughter loves it."
    assert text[("A1", "B000000002")] == "Only a summary" and text[("A2", "0000031852")] == "Fell apart."
    assert text[("A1", "B00NOMETA1")] == ("Long one! " + LONG)[:2000].rsplit(" ", 1)[0]  # cut at a word boundary
    assert set(ev.event) == {"rate"} and sorted(ev.value) == [1, 2, 3, 4, 4, 5, 5]
    assert ev.timestamp[ev.text == "Fine. Dated by reviewTime only"].tolist() == [1252800000]  # 09 13, 2009 UTC
    cat = art.items.to_pandas()
    cat["asin"] = items.to_original(cat.item_id.to_numpy())
    cat = cat.set_index("asin")
    assert cat.loc["0000031852", "title"] == "Girls Ballet Tutu Zebra Hot Pink"
    assert list(cat.loc["0000031852", "genres"]) == ["Sports & Outdoors", "Other Sports", "Dance"]
    assert cat.loc["0000031852", "description"] == 'Brand: Coxlures. It\'s a tutu "for" dancing'
    assert cat.loc["B000000002", "title"] == "Bob's Blocks" and pd.isna(cat.loc["B000000002", "description"])
    assert cat.loc["B000000004", "title"] == "B000000004" and cat.loc["B00NOMETA1", "title"] == "B00NOMETA1"
    assert list(cat.loc["B00NOMETA1", "genres"]) == []

    ref = ingest_in_driver(str(root), cfg, str(tmp_path / "ref"))
    assert_same_outputs(str(tmp_path / "out"), str(tmp_path / "ref"), s, ref)


def test_layouts_are_told_apart_by_their_first_records(tmp_path):
    write_2014(tmp_path / "toys")
    assert detect_format(str(tmp_path / "toys")) == "amazon-2014"
    assert detect_format(str(tmp_path / "toys" / "reviews_Toys_5.json.gz")) == "amazon-2014"
    one = tmp_path / "Beauty.jsonl"
    one.write_text(json.dumps({"rating": 5.0, "title": "t", "text": "x", "parent_asin": "B1", "user_id": "U1",
                               "timestamp": 1588687728923}) + "\n")
    assert detect_format(str(one)) == "amazon-2023"
    generic = tmp_path / "log" / "events.json"
    generic.parent.mkdir()
    generic.write_text(json.dumps({"user_id": 1, "item_id": 2, "timestamp": 1600000000}) + "\n")
    assert detect_format(str(generic)) == "jsonl" and detect_format(str(generic.parent)) == "jsonl"
    (tmp_path / "log" / "notes.txt").write_text("x")
    with pytest.raises(DataError, match=r"cannot tell the format of .*log.*\.txt"):
        detect_format(str(tmp_path / "log"))


def test_amazon_2023_reviews_without_meta_keep_title_and_text(ray_local, tmp_path):
    rows = [{"rating": 5.0, "title": "Great!", "text": "Works well", "parent_asin": "B1", "user_id": "U1", "timestamp": 1588687728923},
            {"rating": 3.0, "title": "", "text": "x" * 2500, "parent_asin": "B2", "user_id": "U1", "timestamp": 1588687729923},
            {"rating": 4.0, "parent_asin": "B1", "user_id": "U2", "timestamp": 1588687730923}]
    (tmp_path / "Beauty.jsonl.gz").write_bytes(gzip.compress("\n".join(json.dumps(r) for r in rows).encode()))
    s = ingest(str(tmp_path / "Beauty.jsonl.gz"), IngestConfig(), str(tmp_path / "out"))
    assert s["format"] == "amazon-2023" and s["accepted"] == 3 and s["texts_cut"] == 1 and s["timestamp_unit"] == "ms"
    art = load_ingest(str(tmp_path / "out"))
    texts = sorted(art.events["text"].to_pylist(), key=lambda t: (t is None, t))
    assert texts == ["Great! Works well", "x" * 2000, None]
    assert sorted(art.items["title"].to_pylist()) == ["B1", "B2"] and art.items["description"].null_count == 2


def test_a_json_log_without_the_mapped_keys_is_a_clear_error(ray_local, tmp_path, capsys):
    from interestrec.cli import main

    log = tmp_path / "log.jsonl"
    log.write_text("".join(json.dumps({"uid": u, "iid": 7, "ts": 1600000000 + u}) + "\n" for u in range(5)))
    with pytest.raises(DataError, match=r"log\.jsonl: missing keys \['user_id', 'item_id', 'timestamp'\]; its first "
                                        r"records have \['uid', 'iid', 'ts'\]"):
        ingest(str(log), IngestConfig(), str(tmp_path / "o1"))
    mapped = IngestConfig(columns=ColumnMapping(user_id="uid", item_id="item", timestamp="ts"))
    with pytest.raises(DataError, match=r"missing keys \['item'\].*expected \['uid', 'item', 'ts'\]"):
        ingest(str(log), mapped, str(tmp_path / "o2"))
    assert ingest(str(log), IngestConfig(columns=ColumnMapping(user_id="uid", item_id="iid", timestamp="ts")),
                  str(tmp_path / "o3"))["accepted"] == 5

    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"uid": [1], "iid": [2], "ts": [1600000000]}), tmp_path / "log.parquet")
    with pytest.raises(DataError, match=r"log\.parquet: missing columns \['user_id', 'item_id', 'timestamp'\]; have "
                                        r"\['uid', 'iid', 'ts'\]"):  # found in the footer, before any task runs
        ingest(str(tmp_path / "log.parquet"), IngestConfig(), str(tmp_path / "o5"))

    rc = main(["run", "--stages", "ingest", "--data", str(log), "--out", str(tmp_path / "run"), "--config", "", "-q"])
    err = capsys.readouterr().err
    assert rc == 2 and "log.jsonl: missing keys ['user_id', 'item_id', 'timestamp']" in err and "Traceback" not in err

    nulls = tmp_path / "nulls.jsonl"  # the keys are there but every id is null: every row rejected, no crash
    nulls.write_text("".join(json.dumps({"user_id": None, "item_id": 1, "timestamp": 1600000000}) + "\n" for _ in range(3)))
    with pytest.raises(StageError, match=r"no valid events .*missing_field"):
        ingest(str(nulls), IngestConfig(), str(tmp_path / "o4"))
