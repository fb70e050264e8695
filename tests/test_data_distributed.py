"""The distributed ingest (shuffle by user, writes by workers) equals the driver-side reference, whatever the
number of partitions; its pieces (exact distributed window edges, manifest-committed datasets) on their own."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fixtures.ingest import assert_same_outputs
from interestrec import artifacts
from interestrec.data import ColumnMapping, IngestConfig
from interestrec.data.partition import partition_of
from interestrec.data.reference import ingest_in_driver
from interestrec.data.stage import ingest
from interestrec.data.windows import window_edges, window_edges_from


def messy_log(path, seed: int = 0) -> None:
    """String user ids, millisecond times with ties at the ends of histories, duplicates, bad and missing fields."""
    rng = np.random.default_rng(seed)
    lines = ["user,item,ts,kind,rating"]
    for r in range(600):
        u = f"U{rng.integers(0, 40):03d}" if r % 97 else f"{rng.integers(0, 40)}"  # a few integer-looking ids
        t = 1_600_000_000_000 + int(rng.integers(0, 50)) * 60_000  # coarse: many equal timestamps
        kind = rng.choice(["view", "click", "rate", "purchase"])
        rating = f"{rng.integers(1, 6)}" if kind == "rate" else ""
        lines.append(f"{u},I{rng.integers(0, 30)},{t},{kind},{rating}")
    lines += [lines[5], lines[5], lines[17]]  # exact duplicates
    lines += ["U001,I3,notatime,view,", ",I3,1600000000000,view,", "U002,I4,1600000000000,teleport,",
              "U003,I5,99,view,", "U004,I6,1600000000000,rate,9"]
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize("partitions", [1, 4])
def test_string_ids_ms_times_and_rejects_equal_the_reference(ray_local, tmp_path, partitions):
    messy_log(tmp_path / "log.csv")
    cfg = IngestConfig(format="csv", columns=ColumnMapping(user_id="user", item_id="item", timestamp="ts", event="kind",
                                                           value="rating", text=None), n_windows=5, partitions=partitions)
    ours = ingest(str(tmp_path / "log.csv"), cfg, str(tmp_path / "ours"))
    ref = ingest_in_driver(str(tmp_path / "log.csv"), cfg, str(tmp_path / "ref"))
    assert ours["partitions"] == partitions and ours["ids"]["users"] == "dense" and ours["timestamp_unit"] == "ms"
    assert ours["rejected_by_reason"]["duplicate"] >= 3
    assert_same_outputs(str(tmp_path / "ours"), str(tmp_path / "ref"), ours, ref)
    parts = json.loads((tmp_path / "ours" / "events.parquet" / "_manifest.json").read_text())["parts"]
    assert len(parts) == partitions  # one file per partition, written by its task


def test_movielens_equals_the_reference_over_three_partitions(ray_local, ml_subset, tmp_path):
    cfg = IngestConfig(partitions=3)
    ours = ingest(str(ml_subset), cfg, str(tmp_path / "ours"))
    ref = ingest_in_driver(str(ml_subset), cfg, str(tmp_path / "ref"))
    assert ours["accepted"] > 1000 and ours["items"] > 100
    assert_same_outputs(str(tmp_path / "ours"), str(tmp_path / "ref"), ours, ref)


def test_cutoff_split_and_fixed_windows_equal_the_reference(ray_local, tmp_path):
    messy_log(tmp_path / "log.csv", seed=1)
    cfg = IngestConfig(format="csv", columns=ColumnMapping(user_id="user", item_id="item", timestamp="ts", event="kind",
                                                           value="rating", text=None),
                       cutoff=1_600_002_000, window_mode="fixed", window_days=1, partitions=3)
    ours = ingest(str(tmp_path / "log.csv"), cfg, str(tmp_path / "ours"))
    ref = ingest_in_driver(str(tmp_path / "log.csv"), cfg, str(tmp_path / "ref"))
    assert ours["split"]["mode"] == "cutoff" and ours["split"]["test"] > 0
    assert_same_outputs(str(tmp_path / "ours"), str(tmp_path / "ref"), ours, ref)


@settings(max_examples=80, deadline=None)
@given(values=st.lists(st.integers(-50, 10**6), min_size=1, max_size=300), chunks=st.integers(1, 5),
       n_windows=st.integers(1, 12))
def test_distributed_window_edges_equal_the_reference(values, chunks, n_windows):
    ts = np.array(values, np.int64)
    shards = [np.sort(s) for s in np.array_split(ts, chunks)]
    calls = []

    def count_le(v):
        calls.append(1)
        return sum(np.searchsorted(s, v, side="right") for s in shards)

    got = window_edges_from(count_le, len(ts), int(ts.min()), int(ts.max()), "equal_count", n_windows)
    assert np.array_equal(got, window_edges(ts, "equal_count", n_windows))
    assert len(calls) <= 8  # a 64-ary search, not a scan


def test_partition_of_is_stable_across_processes_and_joins_integer_spellings():
    keys = np.array(["12", "012", "+12", "U7", None, "9223372036854775807"], dtype=object)
    here = partition_of(keys, 16)
    assert here[0] == here[1] == here[2]
    code = ("import numpy as np; from interestrec.data.partition import partition_of; "
            "print([int(x) for x in partition_of(np.array(['12','012','+12','U7',None,'9223372036854775807'], dtype=object), 16)])")
    there = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert there.strip() == str([int(x) for x in here])


def test_a_directory_dataset_is_read_only_through_its_manifest(tmp_path):
    d = tmp_path / "events.parquet"
    artifacts.write_parquet(str(d / "part-00001.parquet"), pa.table({"x": [3, 4]}))
    artifacts.write_parquet(str(d / "part-00000.parquet"), pa.table({"x": [1, 2]}))
    with pytest.raises(FileNotFoundError, match="incomplete dataset"):
        artifacts.read_parquet(str(d))
    artifacts.write_manifest(str(d), ["part-00000.parquet", "part-00001.parquet"], 4)
    assert artifacts.read_parquet(str(d)).column("x").to_pylist() == [1, 2, 3, 4]
    artifacts.write_parquet(str(d / "part-00002.parquet"), pa.table({"x": [9]}))  # a stray part is not read
    assert artifacts.read_parquet(str(d)).num_rows == 4
