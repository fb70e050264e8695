"""The record parser, its independent counter, exact ids, the id map and timestamp units (no Ray needed)."""

from __future__ import annotations

import numpy as np
import pytest

from interestrec.data import IngestConfig
from interestrec.data.errors import DataError
from interestrec.data.records import count_json_lines, count_records, parse_json_lines, parse_records
from interestrec.data.resolve import decide_unit, map_ids
from interestrec.data.validate import parse_int64, parse_timestamps
from interestrec.ids import IdMap, UnknownIdError
from interestrec.stages import StageError


def records(data: bytes, **kw):
    head, recs = parse_records(data, **kw)
    return head, [(r.record, r.line, r.fields, r.reason) for r in recs]


def test_quoted_fields_span_lines_and_hold_delimiters():
    data = b'u,i,tag,t\n1,2,"two\nlines, one tag",5\n1,3,"say ""hi""",6\n'
    head, recs = records(data)
    assert head == ["u", "i", "tag", "t"]
    assert recs == [(1, 2, ["1", "2", "two\nlines, one tag", "5"], None), (2, 4, ["1", "3", 'say "hi"', "6"], None)]
    assert count_records(data) == 2


def test_bom_crlf_and_a_last_line_without_newline():
    data = b"\xef\xbb\xbfu,i\r\n1,2\r\n3,4"
    head, recs = records(data)
    assert head == ["u", "i"] and [r[2] for r in recs] == [["1", "2"], ["3", "4"]]
    assert count_records(data) == 2


def test_bad_records_are_rejects_with_their_numbers():
    big = b"x" * 200_000
    data = (b"u,i,t\n1,2,3\n1,\xff,3\n1," + big + b",3\n1,2\n1,2,3,4\n1,\"ab\"c,3\n\n1,\"open\n2,3,4\n")
    _, recs = records(data)
    assert [(r[0], r[1], r[3]) for r in recs] == [
        (1, 2, None), (2, 3, "undecodable_bytes"), (3, 4, "oversize_text"), (4, 5, "malformed_record"),
        (5, 6, "malformed_record"), (6, 7, "malformed_record"), (7, 8, None), (8, 9, "malformed_record")]
    assert recs[6][2] == []  # a blank line is a record (without fields: later a missing_field reject)
    assert count_records(data) == len(recs) == 8


def test_a_quote_inside_an_unquoted_field_is_text():
    data = b"u,tag\n1,5'2\" tall\n2,x\n"
    _, recs = records(data)
    assert [r[2] for r in recs] == [["1", "5'2\" tall"], ["2", "x"]] and count_records(data) == 2


def test_plain_multichar_delimiter_and_json_lines():
    _, recs = records(b"1::2::5::978300760\n1::3\n", delimiter="::", quoting=False, header=False)
    assert recs[0][2] == ["1", "2", "5", "978300760"] and len(recs) == 2
    lines = b'{"a": 1}\n\n[1, 2]\nnot json\n{"a": "NA"}\n'
    out = [(r.record, r.fields, r.reason) for r in parse_json_lines(lines)]
    assert out == [(1, [{"a": 1}], None), (3, None, "malformed_record"), (4, None, "malformed_record"), (5, [{"a": "NA"}], None)]
    assert count_json_lines(lines) == 4


def test_int64_ids_are_exact_and_beyond_is_flagged():
    vals = np.array(["9007199254740993", "-9223372036854775808", "9223372036854775808", "12a", None], dtype=object)
    v, is_int, fits = parse_int64(vals)
    assert v[0] == 9007199254740993 and v[1] == -(2**63)
    assert is_int.tolist() == [True, True, True, False, False] and fits.tolist() == [True, True, False, False, False]
    reason = np.full(5, None, dtype=object)
    idx, idmap = map_ids(vals, "int", reason)
    assert reason.tolist() == [None, None, "id_out_of_range", "unparsable_number", None]
    # 64-bit ids get dense indices over their exact text (no array sized by a huge id); small ones stay themselves
    assert idmap.kind == "dense" and idmap.to_original(idx[:2]) == ["9007199254740993", "-9223372036854775808"]
    idx, idmap = map_ids(np.array(["3", "007", None], dtype=object), "int", np.full(3, None, dtype=object))
    assert idmap.kind == "identity" and idx.tolist() == [3, 7, 0]


def test_idmap_dense_and_identity_round_trip(tmp_path):
    dense = IdMap.dense(["B07X", "A1", "AE3V", "A1"])
    assert dense.to_index(["AE3V", "A1"]).tolist() == [1, 0] and dense.to_original([2]) == ["B07X"]
    with pytest.raises(UnknownIdError):
        dense.to_index(["nope"])
    assert dense.to_index(["nope", "B07X"], missing=-1).tolist() == [-1, 2]
    dense.to_parquet(str(tmp_path / "d.parquet"))
    assert IdMap.from_parquet(str(tmp_path / "d.parquet")) == dense
    ident = IdMap.identity(np.array([9007199254740993, 5], np.int64))
    ident.to_parquet(str(tmp_path / "i.parquet"))
    back = IdMap.from_parquet(str(tmp_path / "i.parquet"))
    assert back.kind == "identity" and back.to_index(["9007199254740993"]).tolist() == [9007199254740993]
    assert back.to_original([5]) == [5]


def test_timestamp_units_and_iso():
    cfg = IngestConfig()
    assert decide_unit(np.array([964982703, 1493846415]), np.array([]), cfg) == "s"
    assert decide_unit(np.array([1_600_000_000_123]), np.array([]), cfg) == "ms"
    assert decide_unit(np.array([1_600_000_000_123_456_789]), np.array([]), cfg) == "ns"
    with pytest.raises(DataError, match="cannot tell the timestamp unit.*1 look like s, 1 look like ms"):
        decide_unit(np.array([1_600_000_000, 1_600_000_000_000]), np.array([]), cfg)
    assert decide_unit(np.array([1_600_000_000, 1_600_000_000_000]), np.array([]), IngestConfig(timestamp_unit="ms")) == "ms"
    t = parse_timestamps(np.array(["2020-09-13T12:26:40Z", "2020-09-13 14:26:40+02:00", "1600000000.5", "yesterday"], dtype=object))
    assert t["is_iso"].tolist() == [True, True, False, False] and t["iso"][:2].tolist() == [1_600_000_000] * 2
    assert t["float"][2] == 1600000000.5 and np.isnan(t["float"][3])


def test_the_count_check_stops_the_run_on_a_mismatch():
    from interestrec.data.glue import check_counts, tally

    blocks = [{"records": {"a.csv": 1}}, {"records": {"a.csv": 1}}]  # per-block counts add up
    seen = tally(blocks, "records")
    with pytest.raises(StageError, match="a.csv: the independent count found 3 records but 2 were read"):
        check_counts(["a.csv"], {"a.csv": 3}, seen, error=StageError)  # the distributed stage's error
    with pytest.raises(DataError, match="a.csv: the independent count found 3 records but 2 were read"):
        check_counts(["a.csv"], {"a.csv": 3}, seen)  # the reference's
    assert check_counts(["a.csv", "b.csv"], {"a.csv": 2, "b.csv": 0}, seen) == {"a.csv": 2, "b.csv": 0}
    assert check_counts(["a.csv"], {"a.csv": None}, seen) == {"a.csv": 2}  # a format without an independent count
