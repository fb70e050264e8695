"""The Arrow validation (the distributed ingest's fast path) equals the pandas reference, row for row."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from interestrec.data.config import IngestConfig

IDS = ["12", " 012 ", "+12", "-3", "abc", "", "   ", None, "99999999999999999999", "9223372036854775807",
       "1.5", "u-7", "  " + "i" * 24 + "  "]
TIMES = ["1500000000", "1500000000123", "1.5e9", "2018-03-04T05:06:07Z", "2018-03-04", "not a time", "", None,
         " 1500000001 ", "+1500000002", "inf", "99999999999999999999", "2018-13-45"]
EVENTS = ["rate", "RATE", " Tag ", "tag", "click", "", None, "view", "like", "Purchase"]
VALUES = ["4.5", "5", "0", "6", "-1", "abc", "", None, " 3.5 ", "1e0", "nan", "inf"]
TEXTS = ["funny", "", "   ", None, "x" * 40, "long " * 20, "日本語のテキスト" * 6, "a\tb\nc " * 9, "é" * 29 + " tail",
         "word " * 5 + "w" * 6, " " * 40, "ok " * 10]
READER = [None, None, None, None, "malformed_record", "undecodable_bytes"]


def messy_batch(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)

    def pick(values):  # the first value (valid) most of the time, so that later checks are reached too
        idx = np.where(rng.random(n) < 0.6, 0, rng.integers(0, len(values), n))
        return np.array([values[i] for i in idx], dtype=object)

    raw = np.where(rng.random(n) < 0.5, None, "u,i,t,e,v,x").astype(object)
    return pd.DataFrame({"record": np.arange(1, n + 1, dtype=np.int64), "line": np.arange(2, n + 2, dtype=np.int64),
                         "user_id": pick(IDS), "item_id": pick(IDS), "timestamp": pick(TIMES), "event": pick(EVENTS),
                         "value": pick(VALUES), "text": pick(TEXTS), "reason": pick(READER), "raw": raw,
                         "source": np.full(n, "events.csv", dtype=object)})


def _plain(frame: pd.DataFrame) -> dict:
    """Columns as lists of Python values (None for missing), comparable across the two paths."""
    out = {}
    for c in frame.columns:
        v = frame[c].to_numpy(dtype=object)
        out[c] = [None if (x is None or (isinstance(x, float) and np.isnan(x))) else x for x in v]
    return out


@pytest.mark.parametrize("seed", range(8))
def test_arrow_validation_equals_the_pandas_reference(seed):
    import pyarrow as pa

    from interestrec.data.validate import validate_events
    from interestrec.data.validate_arrow import validate_table

    cfg = IngestConfig(max_text_chars=30, max_id_chars=20)
    batch = messy_batch(400, seed)
    want = validate_events(batch, cfg)
    got = validate_table(pa.Table.from_pandas(batch, preserve_index=False), cfg).to_pandas()
    assert list(got.columns) == list(want.columns)
    w, g = _plain(want), _plain(got)
    for c in want.columns:
        assert g[c] == w[c], c
    assert got["value"].dtype == np.float32 and got["ts_int"].dtype == np.int64
    reasons = set(w["reason"]) - {None}  # the batch reaches every check
    assert {"missing_field", "unparsable_number", "unknown_event", "rating_out_of_range", "oversize_id",
            "malformed_record"} <= reasons
    assert all(r != "oversize_text" for r in w["reason"])  # long text is cut, never a reject
    cut = np.array(w["cut"], bool)
    texts = batch["text"].to_numpy(dtype=object)
    assert cut.any() and all((len(t) > 30) == c for t, c in zip(texts, cut) if isinstance(t, str))
    assert all(len(t) <= 30 for t in np.array(w["text"], dtype=object)[cut])


@settings(max_examples=300, deadline=None)
@given(text=st.text(alphabet=st.sampled_from(list("ab é日\t\n\u00a0\u3000.-")), max_size=80), cap=st.integers(1, 40))
def test_cutting_a_text_in_arrow_equals_the_python_reference(text, cap):
    import pyarrow as pa

    from interestrec.data.validate import cut_text
    from interestrec.data.validate_arrow import cut_texts

    want = cut_text(text, cap)
    got, mask = cut_texts(pa.array([text, None], pa.string()), cap)
    assert got.to_pylist() == [want, None] and mask.tolist() == [len(text) > cap, False]
    assert len(want) <= cap and text.startswith(want)
    if len(text) > cap and text[cap] in " \t\n" and len(text[:cap].rstrip(" \t\n")) >= cap // 2:
        assert want == text[:cap].rstrip(" \t\n")  # the cap falls between words: nothing more is dropped


def test_arrow_validation_of_an_empty_and_an_all_null_batch():
    import pyarrow as pa

    from interestrec.data.validate import validate_events
    from interestrec.data.validate_arrow import validate_table

    cfg = IngestConfig()
    empty = messy_batch(0, 0)
    assert validate_table(pa.Table.from_pandas(empty, preserve_index=False), cfg).num_rows == 0
    nulls = messy_batch(5, 0)
    for c in ("user_id", "item_id", "timestamp", "event", "value", "text", "reason", "raw"):
        nulls[c] = None
    got = validate_table(pa.Table.from_pandas(nulls, preserve_index=False), cfg).to_pandas()
    assert _plain(got) == _plain(validate_events(nulls, cfg))
    assert set(got["reason"]) == {"missing_field"} and all(r == ",,,,," for r in got["raw"])


def test_partition_of_arrow_keys_equals_object_keys():
    import pyarrow as pa

    from interestrec.data.partition import partition_of

    keys = np.array(IDS * 30, dtype=object)
    want = partition_of(keys, 7)
    assert partition_of(pa.array(keys, pa.string()), 7).tolist() == want.tolist()
    spellings = partition_of(pa.array(["12", "012", "+12", "12 "]), 7)  # validated keys are already stripped
    assert spellings[0] == spellings[1] == spellings[2] == want[0]


def test_both_validators_give_the_first_broken_rule_of_the_one_table():
    import pyarrow as pa

    from interestrec.data.rules import REJECT_REASONS, ROW_RULES
    from interestrec.data.schema import REJECT_REASONS as SCHEMA_REASONS
    from interestrec.data.validate import validate_events
    from interestrec.data.validate_arrow import validate_table

    assert SCHEMA_REASONS == REJECT_REASONS and len(set(REJECT_REASONS)) == len(REJECT_REASONS) == 12
    assert [r.reason for r in ROW_RULES] == ["missing_field", "oversize_id", "unparsable_number", "unknown_event",
                                             "rating_out_of_range"]
    long_id = "x" * 30
    rows = [  # (user, item, timestamp, event, value, text, reader's reason), the rules each row breaks
        (("u", "i", "1500000000", "view", None, None, None), set()),
        ((None, long_id, "soon", "like", None, None, None), {"missing_field", "oversize_id", "unparsable_number",
                                                            "unknown_event"}),
        ((long_id, "i", "soon", "like", None, None, None), {"oversize_id", "unparsable_number", "unknown_event"}),
        (("u", "i", "soon", "like", None, None, None), {"unparsable_number", "unknown_event"}),
        (("u", "i", "1500000000", "rate", "abc", None, None), {"unparsable_number", "rating_out_of_range"}),
        (("u", long_id, "1500000000", "rate", "9", None, None), {"oversize_id", "rating_out_of_range"}),
        (("u", "i", "1500000000", "tag", None, "  ", None), {"missing_field"}),
        ((None, "i", "soon", "like", None, None, "malformed_record"), {"malformed_record"}),
    ]
    fields, broken = zip(*rows)
    batch = pd.DataFrame(list(fields), columns=["user_id", "item_id", "timestamp", "event", "value", "text", "reason"])
    n = len(batch)
    batch = batch.assign(record=np.arange(1, n + 1), line=np.arange(2, n + 2), raw="r", source="events.csv")
    cfg = IngestConfig(max_id_chars=20, rating_min=0.5, rating_max=5.0)
    order = ["malformed_record"] + [r.reason for r in ROW_RULES]
    want = [next((r for r in order if r in b), None) for b in broken]
    assert [r if isinstance(r, str) else None for r in validate_events(batch, cfg)["reason"]] == want
    assert validate_table(pa.Table.from_pandas(batch, preserve_index=False), cfg).column("reason").to_pylist() == want
