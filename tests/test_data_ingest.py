"""Ingest on real files through real Ray Data: MovieLens layouts, rejects, splits, windows, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from interestrec.data import IngestConfig, load_ingest
from interestrec.data.errors import DataError
from interestrec.data.stage import ingest


@pytest.fixture(scope="module")
def ml_small_ingest(ray_local, ml_small, tmp_path_factory):
    out = tmp_path_factory.mktemp("ingest")
    summary = ingest(str(ml_small), IngestConfig(), str(out))
    return out, summary


def test_ml_latest_small_counts(ml_small_ingest):
    out, s = ml_small_ingest
    events = load_ingest(str(out)).events
    kinds = dict(zip(*np.unique(events["event"].to_numpy(zero_copy_only=False), return_counts=True)))
    assert kinds["rate"] == 100_836
    assert kinds["tag"] == 3_683
    assert s["users"] == 610
    assert s["items"] == 9_742
    assert s["rows_read"] == s["accepted"] + s["rejected"]
    for f in s["per_file"].values():
        assert f["rows_read"] == f["accepted"] + f["rejected"]


def test_split_invariants(ml_small_ingest):
    out, s = ml_small_ingest
    ev = load_ingest(str(out)).events.to_pandas()
    inter = ev[ev.event.isin(["view", "click", "rate", "purchase"])]
    assert s["split"]["train"] + s["split"]["valid"] + s["split"]["test"] == len(inter)
    per_user = inter.groupby(["user_id", "split"]).timestamp.agg(["min", "max", "size"]).unstack()
    # exactly one valid and one test interaction per user, never earlier than any train interaction
    assert (per_user["size"]["valid"] == 1).all() and (per_user["size"]["test"] == 1).all()
    assert (per_user["min"]["valid"] >= per_user["max"]["train"]).all()
    assert (per_user["min"]["test"] >= per_user["max"]["valid"]).all()


def test_windows_cover_every_event_once(ml_small_ingest):
    out, s = ml_small_ingest
    art = load_ingest(str(out))
    ts = art.events["timestamp"].to_numpy()
    w = art.events["window"].to_numpy()
    win = art.windows.to_pandas()
    assert win.events.sum() == len(ts) == s["accepted"] - s["per_file"]["movies.csv"]["accepted"]
    start, end = win.start.to_numpy()[w], win.end.to_numpy()[w]
    assert ((ts >= start) & (ts < end)).all()
    assert (win.start.to_numpy()[1:] == win.end.to_numpy()[:-1]).all()
    assert s["windows"]["count"] == 8 and max(win.events) < 2 * min(win.events)  # equal-count


def write_ml_latest(root: Path, ratings: list[str], tags: list[str] | None = None, movies: list[str] | None = None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "ratings.csv").write_bytes(b"userId,movieId,rating,timestamp\n" + b"\n".join(
        r if isinstance(r, bytes) else r.encode() for r in ratings) + b"\n")
    (root / "movies.csv").write_text("movieId,title,genres\n" + "\n".join(movies or [
        "1,Toy Story (1995),Adventure|Animation", '2,"Heat, The (1995)",Action|Crime', "3,Blade Runner (1982),Sci-Fi"]) + "\n")
    if tags is not None:
        (root / "tags.csv").write_text("userId,movieId,tag,timestamp\n" + "\n".join(tags) + "\n")
    return root


def test_every_reject_reason_is_counted_and_written(ray_local, tmp_path):
    good = ["1,1,4.0,964982703", "1,2,3.5,964982800", "1,3,5.0,964982900", "2,1,2.0,964983000"]
    bad = [
        ",1,4.0,964982703",           # missing_field
        "1,abc,4.0,964982703",        # unparsable_number
        "1,1,4.0,99",                 # timestamp_out_of_range
        "1,2,7.5,964982703",          # rating_out_of_range
        "1,424242,4.0,964982703",     # unknown_item
        "1,1,4.0,964982703",          # duplicate of the first good row
        b"1,2,\xff\xfe,964982703",    # undecodable_bytes
    ]
    long_tag = "word " * 500  # 2,500 characters: cut, the event kept
    tags = ["1,1,funny,964982703", "1,2," + long_tag + ",964982800", "9" * 300 + ",2,x,964982801"]  # the last: oversize_id
    data = write_ml_latest(tmp_path / "bad", good + bad, tags)
    out = tmp_path / "out"
    s = ingest(str(data), IngestConfig(), str(out))
    assert s["rejected_by_reason"] == {
        "missing_field": 1, "unparsable_number": 1, "timestamp_out_of_range": 1, "rating_out_of_range": 1,
        "unknown_item": 1, "duplicate": 1, "undecodable_bytes": 1, "oversize_id": 1}
    assert s["per_file"]["ratings.csv"] == {"rows_read": 11, "accepted": 4, "rejected": 7}
    assert s["per_file"]["tags.csv"] == {"rows_read": 3, "accepted": 2, "rejected": 1}
    assert s["texts_cut"] == 1
    texts = [t for t in load_ingest(str(out)).events["text"].to_pylist() if t]
    assert sorted(len(t) for t in texts) == [5, 1999] and max(texts, key=len) == long_tag[:1999]
    assert s["rows_read"] == s["accepted"] + s["rejected"]
    rejects = pq.read_table(out / "rejects" / "ratings.csv.parquet").to_pandas()
    assert sorted(rejects.reason) == sorted(["missing_field", "unparsable_number", "timestamp_out_of_range",
                                             "rating_out_of_range", "unknown_item", "duplicate", "undecodable_bytes"])
    assert "1,abc,4.0,964982703" in set(rejects.raw)  # the original row is kept
    assert (rejects.line > 1).all()


def test_missing_file_and_wrong_columns_are_clear_errors(ray_local, tmp_path):
    root = write_ml_latest(tmp_path / "a", ["1,1,4.0,964982703"])
    (root / "movies.csv").unlink()
    with pytest.raises(DataError, match=r"movies\.csv.*movieId,title,genres"):
        ingest(str(root), IngestConfig(), str(tmp_path / "o1"))
    root = write_ml_latest(tmp_path / "b", ["1,1,4.0,964982703"])
    (root / "ratings.csv").write_text("user,item,score,when\n1,1,4.0,964982703\n")
    with pytest.raises(DataError, match=r"ratings\.csv.*userId"):
        ingest(str(root), IngestConfig(), str(tmp_path / "o2"))


def test_ml_1m_layout(ray_local, tmp_path):
    root = tmp_path / "ml-1m"
    root.mkdir()
    (root / "ratings.dat").write_text("1::1::5::978300760\n1::2::3::978302109\n1::3::4::978301968\n2::1::4::978298709\n")
    (root / "movies.dat").write_bytes("1::Toy Story (1995)::Animation|Children's\n2::Jumanji (1995)::Adventure\n"
                                      "3::Amélie (2001)::Comedy|Romance\n".encode("latin-1"))
    s = ingest(str(root), IngestConfig(), str(tmp_path / "out"))
    assert s["format"] == "ml-1m" and s["accepted"] == 4 + 3 and s["rejected"] == 0
    items = load_ingest(str(tmp_path / "out")).items.to_pandas().set_index("item_id")
    assert items.loc[3, "title"] == "Amélie" and items.loc[3, "year"] == 2001
    assert list(items.loc[1, "genres"]) == ["Animation", "Children's"]
    assert s["split"]["test"] == 1 and s["split"]["users_too_short"] == 1


def test_ml_100k_layout(ray_local, tmp_path):
    root = tmp_path / "ml-100k"
    root.mkdir()
    (root / "u.data").write_text("196\t242\t3\t881250949\n186\t302\t3\t891717742\n196\t302\t4\t881251000\n")
    flags = ["0"] * 19
    flags[1] = flags[15] = "1"  # Action, Sci-Fi
    (root / "u.item").write_text(f"242|Kolya (1996)|24-Jan-1997||http://x|{'|'.join(flags)}\n"
                                 f"302|L.A. Confidential (1997)|01-Jan-1997||http://y|{'|'.join(['0'] * 19)}\n")
    s = ingest(str(root), IngestConfig(), str(tmp_path / "out"))
    assert s["format"] == "ml-100k" and s["per_file"]["u.data"]["accepted"] == 3
    items = load_ingest(str(tmp_path / "out")).items.to_pandas().set_index("item_id")
    assert list(items.loc[242, "genres"]) == ["Action", "Sci-Fi"] and items.loc[242, "year"] == 1996


def test_summary_json_written_by_the_pipeline_job(ray_local, ml_subset, tmp_path):
    from interestrec.stages import StageContext, run_stage

    ctx = StageContext(out=str(tmp_path), data=str(ml_subset))
    s = run_stage(ctx, "ingest")
    on_disk = json.loads((tmp_path / "ingest" / "summary.json").read_text())
    assert on_disk["accepted"] == s["accepted"] and on_disk["_run"]["output_hash"]
    assert run_stage(ctx, "ingest")["_run"] == on_disk["_run"]  # unchanged → skipped, same fingerprint
