"""Pool-mode users per events part (Ray tasks) equal the rows of the whole log computed at once."""

import dataclasses

import numpy as np
import pyarrow as pa

from interestrec import artifacts
from interestrec.config import PipelineConfig
from interestrec.encode.config import EncodeConfig
from interestrec.encode.users import pool_rows
from interestrec.stages import StageContext

DAY = 86400


def synthetic_ingest(root, n_users=400, n_items=60, parts=3, seed=0):
    """An ingest output whose events.parquet is a user-disjoint directory dataset of ``parts`` parts."""
    rng = np.random.default_rng(seed)
    n = n_users * 12
    users = rng.integers(0, n_users, n).astype(np.int64) * 13 + 5
    split = np.where(rng.random(n) < 0.8, "train", np.where(rng.random(n) < 0.5, "valid", "test"))
    kinds = rng.choice(["rate", "view", "click", "tag"], n, p=[0.5, 0.3, 0.15, 0.05])
    events = pa.table({
        "user_id": users, "item_id": rng.integers(0, n_items + 3, n).astype(np.int64),  # 3 unknown items
        "timestamp": rng.integers(0, 400, n).astype(np.int64) * DAY, "event": kinds,
        "value": pa.array(np.where(kinds == "rate", rng.integers(1, 11, n) / 2, np.nan), pa.float32()),
        "text": pa.array([f"tag{rng.integers(0, 5)}" if k == "tag" else None for k in kinds], pa.string()),
        "split": split, "window": pa.array(rng.integers(0, 2, n), pa.int32())})
    items = pa.table({"item_id": np.arange(n_items, dtype=np.int64), "title": [f"Movie {i}" for i in range(n_items)],
                      "year": pa.array(np.full(n_items, 2000), pa.int32()),
                      "genres": [["Drama"] if i % 2 else ["Comedy", "Romance"] for i in range(n_items)],
                      "tags": [[] for _ in range(n_items)]})
    windows = pa.table({"window": pa.array([0, 1], pa.int32()), "start": pa.array([0, 200 * DAY], pa.int64()),
                        "end": pa.array([200 * DAY, 400 * DAY], pa.int64()), "events": pa.array([n // 2, n - n // 2])})
    ing = artifacts.join(str(root), "ingest")
    names = []
    for p in range(parts):
        part = events.filter(pa.array((users // 13) % parts == p))
        names.append(f"part-{p:05d}.parquet")
        artifacts.write_parquet(artifacts.join(ing, "events.parquet", names[-1]), part)
    artifacts.write_manifest(artifacts.join(ing, "events.parquet"), names, events.num_rows)
    artifacts.write_parquet(artifacts.join(ing, "items.parquet"), items)
    artifacts.write_parquet(artifacts.join(ing, "windows.parquet"), windows)
    return events, items, windows


def sort_rows(t):
    return t.sort_by([("window", "ascending"), ("user_id", "ascending")])


def fake_vectors(n_items, d=16, seed=1):
    v = np.random.default_rng(seed).normal(size=(n_items, d)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_user_disjoint_parts_give_the_whole_logs_rows(tmp_path):
    events, _, windows = synthetic_ingest(tmp_path)
    ids = np.arange(60, dtype=np.int64)
    tv, sv = fake_vectors(60), fake_vectors(60, seed=2)
    cfg = EncodeConfig(half_life_days=30.0, lookback_days=150.0)
    whole, counts = pool_rows(events, ids, tv, sv, windows, cfg)
    parts = [pool_rows(artifacts.read_parquet(f), ids, tv, sv, windows, cfg)
             for f in artifacts.parquet_files(artifacts.join(str(tmp_path), "ingest", "events.parquet"))]
    joined = pa.concat_tables([t for t, _ in parts])
    assert sort_rows(joined).equals(sort_rows(whole))
    assert sum(c.users for _, c in parts) == counts.users > 0
    assert sum(c.events_unknown_item for _, c in parts) == counts.events_unknown_item > 0
    assert sum(c.window_rows for _, c in parts) == counts.window_rows > 0


def test_stage_writes_users_per_part_without_loading_the_log(ray_local, tmp_path):
    from interestrec.encode.stage import run

    events, _, windows = synthetic_ingest(tmp_path)
    cfg = EncodeConfig(batch_size=16, num_cpus=1, device="cpu", also_text=False, half_life_days=30.0,
                       lookback_days=150.0)
    s = run(StageContext(out=str(tmp_path), config=dataclasses.replace(PipelineConfig(), encode=cfg)))
    users = artifacts.join(str(tmp_path), "encode", "users.parquet")
    assert not s["pool_in_driver"] and len(artifacts.parquet_files(users)) == 3
    items = artifacts.read_parquet(artifacts.join(str(tmp_path), "encode", "items.parquet"))
    valid = artifacts.read_parquet(artifacts.join(str(tmp_path), "encode", "items_valid.parquet"))
    ids = items["item_id"].to_numpy()
    expected, counts = pool_rows(events, ids, artifacts.arrow_to_vectors(valid["vector"]),
                                 artifacts.arrow_to_vectors(items["vector"]), windows, cfg)
    got = artifacts.read_parquet(users)
    assert sort_rows(got).equals(sort_rows(expected))
    import pyarrow.parquet as pq

    for f in artifacts.parquet_files(users):  # one row group per window: a reader of one window skips the rest
        part = pq.ParquetFile(f)
        assert part.metadata.num_row_groups == len(set(part.read(columns=["window"])["window"].to_pylist())) == 3
    train = artifacts.read_parquet(users, filters=[("window", "=", -1)])
    assert train.num_rows == s["users"] and set(train["window"].to_pylist()) == {-1}
    assert s["users"] == counts.users and s["window_rows"] == counts.window_rows
    assert s["events_unknown_item"] == counts.events_unknown_item > 0
    # item texts still carry the tags of the phase's tag events (read part by part)
    from interestrec.encode.phases import phase_item_texts

    _, texts = phase_item_texts(artifacts.read_parquet(artifacts.join(str(tmp_path), "ingest", "items.parquet")),
                                events, "serve")
    assert any("Tags: tag" in t for t in texts)
    assert s["item_texts_changed"]["valid"] > 0  # valid-phase texts see only train tags
