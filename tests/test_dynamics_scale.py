"""The dynamics stage at scale: counted cluster descriptions equal the per-event reference, summed part by part."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from interestrec.dynamics.counts import count_events, count_windows, membership, merge_counts
from interestrec.dynamics.describe import describe_clusters, describe_counts
from interestrec.dynamics.reference import describe_clusters_reference


def random_case(seed: int, n_users: int = 300, n_items: int = 120, n_events: int = 6000):
    rng = np.random.default_rng(seed)
    genres = ["Sci-Fi", "Drama", "Crime", "Comedy", "Animation", "Horror"]
    tags = [f"tag{i}" for i in range(30)]
    g, t = [], []
    for _ in range(n_items):
        r = rng.random()
        g.append(None if r < 0.1 else [] if r < 0.15 else list(rng.choice(genres, rng.integers(1, 4))))
        r = rng.random()
        t.append(None if r < 0.1 else list(rng.choice(tags, rng.integers(1, 9))))  # repeats and > 5 tags
    items = pa.table({"item_id": pa.array(np.arange(n_items) * 7 + 3, pa.int64()),
                      "title": [None if i % 17 == 0 else f"title {i}" for i in range(n_items)],
                      "genres": pa.array(g, pa.list_(pa.string())), "tags": pa.array(t, pa.list_(pa.string()))})
    # skewed item popularity per cluster so that lifts pass the supports; some items are not in the catalog
    users = rng.permutation(np.arange(n_users) * 3 + 11)
    stable = rng.integers(0, 7, n_users) + 40
    ev_u = rng.choice(users[: int(n_users * 0.9)], n_events)  # some users have no events
    cl = dict(zip(users.tolist(), stable.tolist()))
    base = np.array([cl[u] for u in ev_u.tolist()]) * 5 % n_items
    ev_i = np.where(rng.random(n_events) < 0.6, (base + rng.integers(0, 6, n_events)) % n_items,
                    rng.integers(0, n_items + 5, n_events)) * 7 + 3
    outsiders = rng.integers(10_000, 10_050, 300)  # users outside the window's clustering
    events = pa.table({"user_id": pa.array(np.concatenate([ev_u, outsiders]), pa.int64()),
                       "item_id": pa.array(np.concatenate([ev_i, rng.integers(0, n_items, 300) * 7 + 3]), pa.int64())})
    return users, stable, events, items


def test_planted_example_equals_reference():
    items = pa.table({"item_id": [1, 2, 3, 4], "title": ["Alien", "Heat", "Up", None],
                      "genres": [["Sci-Fi", "Sci-Fi"], ["Crime"], ["Animation"], None],
                      "tags": [["space", "a", "b", "c", "d", "late"], ["heist"], None, ["x"]]})
    events = pa.table({"user_id": [1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 9], "item_id": [1, 1, 1, 2, 2, 2, 3, 3, 2, 5, 1]})
    users, stable = np.array([3, 1, 2, 4]), np.array([1, 0, 1, 0])
    got = describe_clusters(users, stable, events, items)
    assert got == describe_clusters_reference(users, stable, events, items)
    assert list(got) == [0, 1] and got[0]["top_genres"][0] == {"genre": "Sci-Fi", "lift": 2.5, "events": 3}
    assert got[0]["users"] == 2 and got[1]["users"] == 2


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_data_equals_reference(seed):
    users, stable, events, items = random_case(seed)
    got = describe_clusters(users, stable, events, items)
    assert got == describe_clusters_reference(users, stable, events, items)
    assert len(got) == len(np.unique(stable)) and any(d["top_items"] for d in got.values())


def test_counts_sum_over_user_disjoint_parts():
    users, stable, events, items = random_case(3)
    u = events["user_id"].to_numpy()
    mem = membership(users, stable)
    parts = [count_events(u[u % 3 == r], events["item_id"].to_numpy()[u % 3 == r], *mem) for r in range(3)]
    whole = count_events(u, events["item_id"].to_numpy(), *mem)
    merged = merge_counts(parts)
    for name in ("cluster", "item", "events", "user_cluster", "users"):
        assert np.array_equal(getattr(merged, name), getattr(whole, name)), name
    assert describe_counts(merged, items) == describe_clusters_reference(users, stable, events, items)


def test_count_windows_takes_each_windows_lookback():
    users, stable, events, items = random_case(4)
    ts = np.random.default_rng(4).integers(0, 100, events.num_rows)
    table = events.append_column("timestamp", pa.array(ts, pa.int64()))
    bounds = [(0, 50), (30, 100)]
    got = count_windows(table, bounds, [membership(users, stable), membership(users[:100], stable[:100])])
    for (lo, hi), (us, st), counts in zip(bounds, [(users, stable), (users[:100], stable[:100])], got):
        ev = table.filter(pa.compute.and_(pa.compute.greater_equal(table["timestamp"], lo), pa.compute.less(table["timestamp"], hi)))
        assert describe_counts(counts, items) == describe_clusters_reference(us, st, ev, items)


def write_dataset(directory, tables):
    from interestrec import artifacts

    names = [f"part-{i:05d}.parquet" for i in range(len(tables))]
    for name, t in zip(names, tables):
        artifacts.write_parquet(directory / name, t)
    artifacts.write_manifest(directory, names, sum(t.num_rows for t in tables))


def test_count_parts_sums_the_part_files(ray_local, tmp_path):
    from interestrec.dynamics.ray_counts import count_parts

    users, stable, events, items = random_case(5)
    ts = np.random.default_rng(5).integers(0, 100, events.num_rows)
    table = events.append_column("timestamp", pa.array(ts, pa.int64()))
    u = table["user_id"].to_numpy()
    write_dataset(tmp_path / "events.parquet", [table.filter(pa.array(u % 3 == r)) for r in range(3)])
    from interestrec import artifacts

    bounds, members = [(0, 60), (40, 100)], [membership(users, stable), membership(users[50:], stable[50:])]
    got = count_parts(artifacts.parquet_files(tmp_path / "events.parquet"), bounds, members)
    for (lo, hi), (us, st), counts in zip(bounds, [(users, stable), (users[50:], stable[50:])], got):
        ev = table.filter(pa.compute.and_(pa.compute.greater_equal(table["timestamp"], lo), pa.compute.less(table["timestamp"], hi)))
        assert describe_counts(counts, items) == describe_clusters_reference(us, st, ev, items)


def blobs(n, d=16, k=6, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(k, d)) * 4
    return (centres[rng.integers(0, k, n)] + rng.normal(size=(n, d))).astype(np.float32)


def test_windows_read_by_tasks_and_fit_with_kept_actors(ray_local, tmp_path):
    from interestrec import artifacts
    from interestrec.cluster.distributed import DistributedKMeans
    from interestrec.dynamics.stage import window_fit
    from interestrec.dynamics.warmstart import local_fit
    from interestrec.dynamics.windows import (
        WindowRows,
        read_user_vectors,
        read_window_vectors,
                window_users,
    )

    rng = np.random.default_rng(1)
    rows = []
    for w in (-1, 0, 1):
        ids = rng.permutation(3000)[:2500].astype(np.int64) * 7
        x = blobs(len(ids), seed=w + 2)
        rows.append(pa.table({"user_id": ids, "window": pa.array(np.full(len(ids), w), pa.int32()),
                              "vector": artifacts.vectors_to_arrow(x), "n_events": pa.array(rng.integers(1, 9, len(ids)), pa.int32())}))
    whole = pa.concat_tables(rows)
    perm = rng.permutation(whole.num_rows)
    path = tmp_path / "users.parquet"
    write_dataset(path, [whole.take(perm[:3000]), whole.take(perm[3000:])])
    by_window = window_users(str(path), 3)
    assert sorted(by_window) == [0, 1]
    km = DistributedKMeans(2, num_cpus=0.5)
    fit = window_fit(km, min_users=1000)
    with km.kept_actors():
        for w in (0, 1):
            users, x = read_window_vectors(str(path), w, 3)
            assert np.array_equal(users, by_window[w])
            ref = local_fit(x, 6, None, "spherical", 0)
            got = fit(WindowRows(str(path), w, 3, users), 6, ref.centroids, "spherical", 0)
            assert np.array_equal(got.ids, users)
            assert (got.labels == ref.labels).mean() > 0.999
            actors = list(km.actors)
            if w == 0:
                first = actors
                import ray

                ray.kill(km.actors[1], no_restart=True)  # an actor lost between fits is replaced
        assert actors[0] == first[0] and actors[1] != first[1] and km.restarts == 1
    assert km.actors == []
    one = window_fit(DistributedKMeans(1, num_cpus=0.5), min_users=1000)(WindowRows(str(path), 1, 3, users), 6, ref.centroids, "spherical", 0)
    assert np.array_equal(one.ids, users) and (one.labels == got.labels).mean() > 0.999
    sample = by_window[1][[5, 1, 300]]
    _, x1 = read_window_vectors(str(path), 1, 3)
    np.testing.assert_array_equal(read_user_vectors(str(path), 1, sample), x1[[5, 1, 300]])


def make_stage_inputs(out, n_users=600, k=4, d=8, seed=0):
    """ingest (events as a two-part directory dataset), encode/users.parquet (three parts) and the cluster stage's output."""
    from interestrec import artifacts

    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(k, d)) * 5
    day = 86400
    bounds = [(w * 30 * day, (w + 1) * 30 * day) for w in range(3)]
    n_items = 40
    items = pa.table({"item_id": pa.array(np.arange(n_items) + 100, pa.int64()), "title": [f"t{i}" for i in range(n_items)],
                      "genres": [[f"G{i % k}"] for i in range(n_items)], "tags": [[f"tag{i % 7}", "x"] for i in range(n_items)]})
    users = np.arange(n_users, dtype=np.int64) * 5 + 1
    rows, events = [], []
    for w in (-1, 0, 1, 2):
        c = (np.arange(n_users) + (w > 0) * (np.arange(n_users) % 9 == 0)) % k  # some users move
        x = (centres[c] + rng.normal(size=(n_users, d))).astype(np.float32)
        rows.append(pa.table({"user_id": users, "window": pa.array(np.full(n_users, w), pa.int32()),
                              "vector": artifacts.vectors_to_arrow(x), "n_events": pa.array(rng.integers(1, 12, n_users), pa.int32())}))
        if w >= 0:
            ev_u = np.repeat(users, 6)
            ev_i = 100 + (np.repeat(c, 6) + k * rng.integers(0, n_items // k, len(ev_u)))
            ts = rng.integers(*bounds[w], len(ev_u))
            events.append(pa.table({"user_id": ev_u, "item_id": pa.array(ev_i, pa.int64()), "timestamp": ts}))
    whole = pa.concat_tables(rows)  # users.parquet as a directory dataset, a part per user hash (as encode writes it)
    uu = whole["user_id"].to_numpy()
    write_dataset(out / "encode" / "users.parquet", [whole.filter(pa.array(uu % 3 == r)) for r in range(3)])
    ev = pa.concat_tables(events)
    u = ev["user_id"].to_numpy()
    write_dataset(out / "ingest" / "events.parquet", [ev.filter(pa.array(u % 2 == r)) for r in range(2)])
    artifacts.write_parquet(out / "ingest" / "items.parquet", items)
    artifacts.write_parquet(out / "ingest" / "windows.parquet", pa.table({
        "window": pa.array([0, 1, 2], pa.int32()), "start": [b[0] for b in bounds], "end": [b[1] for b in bounds]}))
    artifacts.write_json(out / "cluster" / "summary.json", {"k": k})
    artifacts.write_npy(out / "cluster" / "centroids.npy", (centres / np.linalg.norm(centres, axis=1, keepdims=True)).astype(np.float32))


@pytest.mark.parametrize("mode", ["warm", "streaming"])
def test_stage_with_distributed_windows_equals_the_in_driver_path(ray_local, tmp_path, mode):
    import dataclasses
    import json

    from interestrec.config import PipelineConfig
    from interestrec.dynamics.config import DynamicsConfig
    from interestrec.dynamics.stage import run
    from interestrec.encode.config import EncodeConfig
    from interestrec.stages import StageContext

    outs = {}
    for name, min_users, plots in (("driver", 10**6, False), ("datasets", 1, True)):
        out = tmp_path / name
        make_stage_inputs(out)
        cfg = dataclasses.replace(PipelineConfig(), encode=EncodeConfig(lookback_days=30),
                                  dynamics=DynamicsConfig(mode=mode, distributed_min_users=min_users, plots=plots))
        outs[name] = (out, run(StageContext(out=str(out), config=cfg)))
    (a, sa), (b, sb) = outs["driver"], outs["datasets"]
    assert not sa["distributed"] and sb["distributed"]
    for f in ("lineage.json", "clusters.json"):
        assert json.loads((a / "dynamics" / f).read_text()) == json.loads((b / "dynamics" / f).read_text())
    assert pa.parquet.read_table(a / "dynamics" / "assignments.parquet").equals(pa.parquet.read_table(b / "dynamics" / "assignments.parquet"))
    assert [w["users"] for w in sb["windows"]] == [w["users"] for w in sa["windows"]]
    assert {"pca_last_window.png", "silhouette.png"} <= set(sb["plots"])
    assert all((b / "dynamics" / "plots" / p).stat().st_size > 0 for p in sb["plots"])


def test_kept_actors_leave_a_cpu_for_the_reads_and_align_checks_coverage():
    from interestrec.dynamics.stage import kept_actor_cpus
    from interestrec.dynamics.windows import align

    assert kept_actor_cpus(2, 1, 2.0) == 0.5 and kept_actor_cpus(2, 1, 64.0) == 1.0
    assert kept_actor_cpus(2, 1, 1.0) is None
    ids = np.array([30, 10, 20])
    assert np.array_equal(ids[align(ids, np.array([20, 30]))], [20, 30])
    with pytest.raises(ValueError, match="cover"):
        align(ids, np.array([40]))
