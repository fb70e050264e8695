"""Ingest of real-world log shapes through real Ray Data: every record accepted or rejected, exact counts and reasons."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from interestrec.data import ColumnMapping, IngestConfig, load_ingest
from interestrec.data.errors import DataError
from interestrec.data.stage import ingest
from interestrec.ids import IdMap, load_id_maps

BIG = "x" * 200_000


def counts(summary: dict, name: str) -> tuple[int, int, int]:
    f = summary["per_file"][name]
    return f["rows_read"], f["accepted"], f["rejected"]


def test_movielens_with_multiline_oversize_bom_crlf_gz(ray_local, tmp_path):
    root = tmp_path / "ml"
    root.mkdir()
    ratings = ["userId,movieId,rating,timestamp", "1,1,4.0,964982703", "1,2,3.5,964982800", "1,3,5.0,964982900",
               "2,1,2.0,964983000", f"1,2,{BIG},964982703"]
    (root / "ratings.csv.gz").write_bytes(gzip.compress(b"\xef\xbb\xbf" + "\r\n".join(ratings).encode() + b"\r\n"))
    (root / "tags.csv").write_text("userId,movieId,tag,timestamp\n" '1,1,"funny,\ndark",964982703\n'
                                   f"1,2,{BIG},964982800\n" "2,1,NA,964983000\n" '1,3,"broken"x,964983001\n')
    (root / "movies.csv").write_text("movieId,title,genres\n1,Toy Story (1995),Adventure\n"
                                     '2,"Heat, The\n(1995)",Action\n3,Blade Runner (1982),Sci-Fi\n'
                                     f"4,{BIG},Drama\n")
    s = ingest(str(root), IngestConfig(), str(tmp_path / "out"))
    assert s["format"] == "ml-latest"
    assert counts(s, "ratings.csv.gz") == (5, 4, 1)
    assert counts(s, "tags.csv") == (4, 2, 2)
    assert counts(s, "movies.csv") == (4, 3, 1)
    assert s["rejected_by_reason"] == {"oversize_text": 3, "malformed_record": 1}
    art = load_ingest(str(tmp_path / "out"))
    texts = sorted(t for t in art.events["text"].to_pylist() if t)
    assert texts == ["NA", "funny,\ndark"]  # the text "NA" stays text
    items = art.items.to_pandas().set_index("item_id")
    assert items.loc[2, "title"] == "Heat, The" and items.loc[2, "year"] == 1995
    assert list(items.loc[1, "tags"]) == ["funny,\ndark", "na"] and list(items.loc[3, "tags"]) == []
    rej = pq.read_table(tmp_path / "out" / "rejects" / "tags.csv.parquet").to_pandas()
    assert rej[["record", "line", "reason"]].values.tolist() == [[2, 4, "oversize_text"], [4, 6, "malformed_record"]]
    assert s["ids"]["users"] == "identity" and s["timestamp_unit"] == "s"


def write_partitioned(root: Path) -> Path:
    head = "user,item,ts,kind,text\n"
    d1 = root / "date=2024-01-01"
    d1.mkdir(parents=True)
    (d1 / "part-0.csv.gz").write_bytes(gzip.compress((head + "9007199254740993,10,1600000000123,view,NA\n"
                                                      "9007199254740993,11,1600000100123,click,null\n"
                                                      "9223372036854775808,10,1600000200000,view,\n").encode()))
    d2 = root / "date=2024-01-02"
    d2.mkdir()
    (d2 / "part-0.csv").write_text(head + "9007199254740993,12,1600000300000,purchase,\n2,10,1600000400000,,\n"
                                   "2,10,1600000500000,view,x,extra\n")
    (root / "truth.csv").write_text(head + "2,11,1600000600000,view,\n")
    (root / "_SUCCESS").write_text("")
    return root


MAP = ColumnMapping(user_id="user", item_id="item", timestamp="ts", event="kind", value=None, text="text")


def test_partitions_gz_exact_int64_ids_ms_and_no_silent_skips(ray_local, tmp_path):
    root = write_partitioned(tmp_path / "log")
    s = ingest(str(root), IngestConfig(format="csv", columns=MAP), str(tmp_path / "out"))
    assert counts(s, "date=2024-01-01/part-0.csv.gz") == (3, 2, 1)
    assert counts(s, "date=2024-01-02/part-0.csv") == (3, 1, 2)
    assert counts(s, "truth.csv") == (1, 1, 0)  # a file named truth* is read, not skipped
    assert s["rows_read"] == 7 and s["accepted"] == 4
    assert s["rejected_by_reason"] == {"id_out_of_range": 1, "missing_field": 1, "malformed_record": 1}
    assert s["timestamp_unit"] == "ms" and s["ignored_files"] == ["_SUCCESS"]
    ev = load_ingest(str(tmp_path / "out")).events
    assert min(ev["timestamp"].to_pylist()) == 1_600_000_000
    assert sorted(t for t in ev["text"].to_pylist() if t) == ["NA", "null"]
    users, items = load_id_maps(str(tmp_path / "out"))
    assert users.kind == "dense" and items.kind == "identity"  # a 64-bit id column gets dense indices
    assert sorted(set(users.to_original(ev["user_id"].to_numpy()))) == ["2", "9007199254740993"]  # exact, not …992
    (root / "notes.txt").write_text("hello")
    with pytest.raises(DataError, match=r"cannot read notes\.txt as csv"):
        ingest(str(root), IngestConfig(format="csv", columns=MAP), str(tmp_path / "out2"))


def test_mixed_type_jsonl_string_ids_iso_times_and_null_events(ray_local, tmp_path):
    rows = [
        '{"user_id": "AE1", "item_id": 10, "timestamp": "2020-09-13T12:26:40Z", "event": "view"}',
        '{"user_id": 7, "item_id": "10", "timestamp": "2020-09-13T12:26:41+00:00", "event": "click"}',
        '{"user_id": "AE1", "item_id": 11, "timestamp": 1600000002, "event": null}',
        '{"user_id": "AE1", "item_id": 12, "timestamp": 1600000003}',
        '{"user_id": ["x"], "item_id": 1, "timestamp": 1600000004, "event": "view"}',
        '{"user_id": "AE2", "item_id": 12, "timestamp": 1600000005, "event": "search", "text": "null"}',
        "not json",
    ]
    (tmp_path / "log.jsonl").write_text("\n".join(rows) + "\n")
    s = ingest(str(tmp_path / "log.jsonl"), IngestConfig(format="jsonl"), str(tmp_path / "out"))
    assert counts(s, "log.jsonl") == (7, 4, 3)
    assert s["rejected_by_reason"] == {"missing_field": 1, "malformed_record": 2}
    assert s["ids"] == {"users": "dense", "items": "identity", "users_mapped": 3, "items_mapped": 2}
    assert s["events_by_kind"] == {"click": 1, "search": 1, "view": 2}  # no event key → the documented default
    art = load_ingest(str(tmp_path / "out"))
    users, items = load_id_maps(str(tmp_path / "out"))
    originals = users.to_original(art.events["user_id"].to_numpy())
    assert sorted(set(originals)) == ["7", "AE1", "AE2"]
    assert art.events["timestamp"].to_pylist()[:1] and min(art.events["timestamp"].to_pylist()) == 1_600_000_000
    assert [t for t in art.events["text"].to_pylist() if t] == ["null"]


def test_amazon_reviews_2023_layout(ray_local, tmp_path):
    root = tmp_path / "amazon"
    root.mkdir()
    u1, u2 = "AGKHLEW2SOWHNMFQIJGBECAF7INQ", "AFQLNQNQYFWQZPJQZS6V3NZU4QBQ"
    reviews = [
        {"rating": 5.0, "title": "Great", "text": "ok", "parent_asin": "B00YQ6X8EO", "user_id": u1, "timestamp": 1588687728923,
         "verified_purchase": True},
        {"rating": 4.0, "parent_asin": "B081TJ8YS3", "user_id": u1, "timestamp": 1588615855070},
        {"rating": 3.0, "parent_asin": "B00YQ6X8EO", "user_id": u2, "timestamp": 1589665266052},
        {"rating": 5.0, "parent_asin": "B0NOTINMETA", "user_id": u2, "timestamp": 1589665266053},
        {"rating": 9.0, "parent_asin": "B081TJ8YS3", "user_id": u2, "timestamp": 1589665266054},
    ]
    (root / "All_Beauty.jsonl.gz").write_bytes(gzip.compress("\n".join(json.dumps(r) for r in reviews).encode()))
    meta = [{"main_category": "All Beauty", "title": "Howard LC0008 Leather Conditioner", "parent_asin": "B00YQ6X8EO",
             "categories": []},
            {"title": "Yes to Tomatoes", "parent_asin": "B081TJ8YS3", "categories": ["Beauty", "Skin Care"]},
            {"title": "no id"}]
    (root / "meta_All_Beauty.jsonl").write_text("\n".join(json.dumps(m) for m in meta) + "\n")
    s = ingest(str(root), IngestConfig(), str(tmp_path / "out"))
    assert s["format"] == "amazon-2023" and s["timestamp_unit"] == "ms"
    assert counts(s, "All_Beauty.jsonl.gz") == (5, 3, 2) and counts(s, "meta_All_Beauty.jsonl") == (3, 2, 1)
    assert s["rejected_by_reason"] == {"unknown_item": 1, "rating_out_of_range": 1, "missing_field": 1}
    users, items = load_id_maps(str(tmp_path / "out"))
    assert users.kind == items.kind == "dense" and users.to_original(users.to_index([u2])) == [u2]
    cat = load_ingest(str(tmp_path / "out")).items.to_pandas()
    assert items.to_original(cat.item_id) == ["B00YQ6X8EO", "B081TJ8YS3"]
    assert list(cat.genres[1]) == ["Beauty", "Skin Care"]
    texts = [t for t in load_ingest(str(tmp_path / "out")).events["text"].to_pylist() if t]
    assert texts == ["Great. ok"]  # a review's title and text become the event text


def test_recbole_atomic_files(ray_local, tmp_path):
    root = tmp_path / "ml-toy"
    root.mkdir()
    (root / "ml-toy.inter").write_text("user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
                                       "u1\ti1\t4\t881250949\nu1\ti2\t3\t881250950\nu2\ti1\t5\t881250951\n"
                                       "u2\ti3\t2\t881250952\nu3\ti1\tx\t881250953\n")
    (root / "ml-toy.item").write_text("item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n"
                                      "i1\tKolya\t1996\tComedy Drama\ni2\tHeat\t1995\tAction\n")
    s = ingest(str(root), IngestConfig(), str(tmp_path / "out"))
    assert s["format"] == "recbole"
    assert counts(s, "ml-toy.inter") == (5, 3, 2) and counts(s, "ml-toy.item") == (2, 2, 0)
    assert s["rejected_by_reason"] == {"unknown_item": 1, "unparsable_number": 1}
    items = load_ingest(str(tmp_path / "out")).items.to_pandas()
    assert items.title.tolist() == ["Kolya", "Heat"] and items.year.tolist() == [1996, 1995]
    assert list(items.genres[0]) == ["Comedy", "Drama"]
    _, imap = load_id_maps(str(tmp_path / "out"))
    assert isinstance(imap, IdMap) and imap.to_original(items.item_id) == ["i1", "i2"]


def test_parquet_parts_whose_types_change_between_files(ray_local, tmp_path):
    import pyarrow as pa

    root = tmp_path / "pq"
    (root / "day=1").mkdir(parents=True)
    (root / "day=2").mkdir()
    pq.write_table(pa.table({"user_id": [1, 2], "item_id": [10, 11], "timestamp": [1_600_000_000, 1_600_000_001],
                             "event": ["view", "click"]}), root / "day=1" / "part.parquet")
    pq.write_table(pa.table({"user_id": ["u3", None], "item_id": ["10", "12"],
                             "timestamp": ["2020-09-13T12:26:42Z", "2020-09-13T12:26:43Z"], "event": ["view", "view"]}),
                   root / "day=2" / "part.parquet")
    s = ingest(str(root), IngestConfig(format="parquet"), str(tmp_path / "out"))
    assert counts(s, "day=1/part.parquet") == (2, 2, 0) and counts(s, "day=2/part.parquet") == (2, 1, 1)
    assert s["rejected_by_reason"] == {"missing_field": 1}
    assert s["ids"]["users"] == "dense" and s["ids"]["items"] == "identity"
    users, _ = load_id_maps(str(tmp_path / "out"))
    assert sorted(users.ids.tolist()) == ["1", "2", "u3"]
