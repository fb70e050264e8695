"""Vectors from parquet files to the k-means actors: per-file read tasks, filtered at the source (real Ray)."""

import numpy as np
import pyarrow as pa

from interestrec import artifacts


def write_parts(root, n_files=3, per_file=50, d=8, seed=0):
    """Files like encode's users.parquet parts: whole-history rows (window -1), then window 0, a row group each."""
    rng = np.random.default_rng(seed)
    files, rows = [], []
    for f in range(n_files):
        ids = np.arange(per_file, dtype=np.int64) + 1000 * f
        vec = rng.normal(size=(2 * per_file, d)).astype(np.float32)
        t = pa.table({"user_id": np.concatenate([ids, ids]),
                      "window": pa.array(np.repeat([-1, 0], per_file), pa.int32()),
                      "vector": artifacts.vectors_to_arrow(vec)})
        path = str(root / f"part-{f}.parquet")
        artifacts.write_parquet(path, t, row_groups=[per_file, per_file])
        files.append(path)
        rows.append(t.slice(0, per_file))
    return files, pa.concat_tables(rows)


def test_file_blocks_are_shard_major_slices_of_the_filtered_rows(ray_local, tmp_path):
    import ray

    from interestrec.cluster.sources import file_blocks

    files, whole = write_parts(tmp_path)
    refs = file_blocks(files, ["user_id", "vector"], [("window", "=", -1)], num_actors=2)
    tables = ray.get(refs)
    assert len(tables) == 6 and all(t.column_names == ["user_id", "vector"] for t in tables)
    # actor 0 gets the first slice of every file, actor 1 the second
    assert [t["user_id"][0].as_py() for t in tables] == [0, 1000, 2000, 25, 1025, 2025]
    got = pa.concat_tables(tables).sort_by("user_id")
    assert got["user_id"].equals(whole["user_id"]) and got["vector"].equals(whole["vector"])
    one = ray.get(file_blocks(files, ["user_id"], [("window", "=", 0)], num_actors=1))
    assert sum(t.num_rows for t in one) == 150


def test_sample_rows_is_seeded_and_complete_at_fraction_one(ray_local, tmp_path):
    from interestrec.cluster.sources import sample_rows

    files, whole = write_parts(tmp_path)
    flt = [("window", "=", -1)]
    a = sample_rows(files, ["user_id"], flt, 0.3, seed=5)
    assert a.equals(sample_rows(files, ["user_id"], flt, 0.3, seed=5))
    assert not a.equals(sample_rows(files, ["user_id"], flt, 0.3, seed=6))
    assert 20 < a.num_rows < 80 and set(a["user_id"].to_pylist()) <= set(whole["user_id"].to_pylist())
    assert sample_rows(files, ["user_id"], flt, 1.0, seed=0)["user_id"].equals(whole["user_id"])


def test_kmeans_over_file_blocks_returns_every_users_label(ray_local, tmp_path):
    from interestrec.cluster.distributed import DistributedKMeans
    from interestrec.cluster.sources import file_blocks

    files, whole = write_parts(tmp_path)
    res = DistributedKMeans(num_actors=2, num_cpus=0.5).fit(
        file_blocks(files, ["user_id", "vector"], [("window", "=", -1)], 2, num_cpus=0.5), 4, seed=0)
    assert sorted(res.ids.tolist()) == sorted(whole["user_id"].to_pylist())
    assert len(res.labels) == 150 and res.counts.sum() == 150
