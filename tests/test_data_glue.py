"""What the distributed ingest and its driver-side reference share, on its own (no Ray needed): tags, items,
per-file accounting and the summary."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pyarrow as pa
import pytest

from interestrec import artifacts
from interestrec.data import IngestConfig
from interestrec.data.catalog import reject_table
from interestrec.data.errors import DataError
from interestrec.data.glue import (
    Tallies,
    account_files,
    check_accepted,
    count_tags,
    items_table,
    summary,
    tag_lists,
)
from interestrec.data.reading import Reading
from interestrec.ids import IdMap


def test_tags_are_counted_lower_cased_and_listed_most_frequent_first():
    tags = count_tags(np.array([1, 1, 1, 2, 1, 1], np.int64),
                      np.array([" Funny", "funny", "dark", None, "  ", "Dark"], dtype=object))
    assert tags == Counter({(1, "funny"): 2, (1, "dark"): 2})
    assert tag_lists(np.array([2, 1, 3]), tags + Counter({(1, "cozy"): 3})) == [[], ["cozy", "dark", "funny"], []]


def test_items_of_a_log_without_a_catalog_are_its_ids():
    items = items_table(Reading(events={}), None, Counter(), np.array([0, 1], np.int64), IdMap.dense(["b", "a"]))
    assert items.column("item_id").to_pylist() == [0, 1] and items.column("title").to_pylist() == ["a", "b"]
    assert items.column("tags").to_pylist() == [[], []] and items.column("description").null_count == 2


def test_catalog_items_take_their_tags_from_events_when_the_format_says_so():
    catalog = pa.table({"item_id": ["10", "20"], "title": ["A", "B"], "year": pa.array([None, 1999], pa.int32()),
                        "genres": [["x"], []], "tags": [["kept"], []]})
    tags = Counter({(1, "dark"): 1})
    for from_events, want in ((False, [["kept"], []]), (True, [[], ["dark"]])):
        reading = Reading(events={}, items=catalog, tags_from_events=from_events)
        items = items_table(reading, np.array([0, 1], np.int64), tags, np.zeros(0, np.int64), IdMap.dense(["10", "20"]))
        assert items.column("tags").to_pylist() == want and items.column("item_id").to_pylist() == [0, 1]


def test_every_record_read_is_accounted_for_per_file(tmp_path):
    item_rejects = reject_table([(2, 3, "x", "missing_field")], "movies.csv")
    reading = Reading(events={}, item_rows={"movies.csv": (5, item_rejects)}, ignored=["_SUCCESS"])
    rejects_dir = str(tmp_path / "rejects")
    accounts = account_files({"a.csv": 4, "b.csv": 0}, Counter({"a.csv": 3}), Counter({"duplicate": 1}), reading,
                             rejects_dir)
    assert accounts.per_file == {"a.csv": {"rows_read": 4, "accepted": 3, "rejected": 1},
                                 "b.csv": {"rows_read": 0, "accepted": 0, "rejected": 0},
                                 "movies.csv": {"rows_read": 5, "accepted": 4, "rejected": 1}}
    assert accounts.by_reason == Counter({"duplicate": 1, "missing_field": 1})
    assert artifacts.read_parquet(f"{rejects_dir}/movies.csv.parquet").column("reason").to_pylist() == ["missing_field"]
    with pytest.raises(DataError, match=r"no valid events in d: every row was rejected \(\{'duplicate': 1"):
        check_accepted(0, accounts, "d", "out")

    tallies = Tallies(users=2, items_with_events=3, texts_cut=0, events_by_kind=Counter({"view": 3}),
                      split=Counter({"train": 3}), other_split=Counter(), users_by_split={"train": 2, "valid": 0, "test": 0},
                      too_short=2, time_range=(10, 20))
    s = summary("csv", "d", IngestConfig(), reading, accounts, tallies, 4, np.array([10, 21]), np.array([3]),
                (IdMap.dense(["u1", "u2"]), IdMap.identity(np.array([1, 2, 3]))), "s", extra={"partitions": 2})
    assert (s["rows_read"], s["accepted"], s["rejected"]) == (9, 7, 2)
    assert s["split"]["users_too_short"] == 2 and s["windows"]["bounds"] == [[10, 21]] and s["time_range"] == [10, 20]
    assert list(s)[-2:] == ["partitions", "driver_peak_rss_mb"] and s["ignored_files"] == ["_SUCCESS"]
