"""DistributedKMeans on a real local Ray: agreement with the reference, determinism across 1/2/4 actors,
Dataset and object-ref input, bad input before the fit, and recovery from an actor killed mid-fit."""

from __future__ import annotations

import json
import os
import threading
import time

import numpy as np
import pytest

from interestrec.cluster import DistributedKMeans, kmeans


def blobs(n=6000, d=24, k=12, std=1.0, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(k, d))
    centres *= 10 / np.linalg.norm(centres, axis=1, keepdims=True)
    y = rng.integers(0, k, n)
    return (centres[y] + std * rng.normal(size=(n, d))).astype(np.float32), y


@pytest.fixture(scope="module")
def data():
    return blobs(n=9000, d=24, k=16, std=2.5, seed=1)


def test_matches_reference_exactly_from_same_seed(ray_local, data):
    x, _ = data
    ref = kmeans(x, 16, seed=0, tol=0)
    r = DistributedKMeans(2, num_cpus=0.5).fit(x, 16, seed=0, tol=0)
    assert r.n_iter == ref.n_iter
    np.testing.assert_allclose(r.centroids, ref.centroids, rtol=1e-5, atol=1e-5)
    assert np.array_equal(r.labels, ref.labels)
    assert abs(r.inertia / ref.inertia - 1) < 1e-6
    np.testing.assert_array_equal(r.counts, ref.counts)


@pytest.mark.parametrize("init,metric", [pytest.param("k-means++", "euclidean", marks=pytest.mark.slow),
                                         ("k-means||", "spherical")])
def test_deterministic_across_1_2_4_actors(ray_local, data, init, metric):
    x, _ = data
    results = [DistributedKMeans(n, num_cpus=0.5).fit(x, 16, init=init, metric=metric, seed=7, tol=0)
               for n in (1, 2, 4)]
    base = results[0]
    for r in results[1:]:
        scale = np.abs(base.centroids).max()
        assert np.abs(r.centroids - base.centroids).max() <= 1e-4 * scale
        assert abs(r.inertia / base.inertia - 1) < 1e-4
        assert (r.labels == base.labels).mean() > 0.999
    if metric == "spherical":
        np.testing.assert_allclose(np.linalg.norm(base.centroids, axis=1), 1.0, atol=1e-5)


def test_dataset_and_object_ref_input(ray_local, data):
    import pyarrow as pa
    import ray

    from interestrec import artifacts

    x, _ = data
    ids = np.arange(len(x), dtype=np.int64) * 10
    table = pa.table({"user_id": ids, "vector": artifacts.vectors_to_arrow(x)})
    ds = ray.data.from_arrow([table.slice(0, 3000), table.slice(3000, 2500), table.slice(5500)])
    ref = DistributedKMeans(2, num_cpus=0.5).fit(x, 16, seed=3)
    from_ds = DistributedKMeans(2, num_cpus=0.5).fit(ds, 16, seed=3)
    np.testing.assert_array_equal(from_ds.ids, ids)
    np.testing.assert_allclose(from_ds.centroids, ref.centroids, atol=1e-5)
    refs = [ray.put(x[:4000]), ray.put(x[4000:7000]), ray.put(x[7000:])]
    from_refs = DistributedKMeans(2, num_cpus=0.5).fit(refs, 16, seed=3)
    np.testing.assert_allclose(from_refs.centroids, ref.centroids, atol=1e-5)
    assert from_refs.ids is None and len(from_refs.labels) == len(x)
    np.testing.assert_allclose(from_refs.distances.sum(), from_refs.inertia, rtol=1e-4)


def test_bad_input_is_rejected_before_actors_start(ray_local):
    import ray

    km = DistributedKMeans(2, num_cpus=0.5)
    x = np.ones((10, 3), np.float32)
    bad = x.copy()
    bad[4, 1] = np.nan
    with pytest.raises(ValueError, match="NaN/inf"):
        km.fit(bad, 2)
    with pytest.raises(ValueError, match="larger than the number of rows"):
        km.fit(x, 11)
    with pytest.raises(ValueError, match="dimension mismatch"):
        km.fit(x, 2, init_centroids=np.ones((2, 4)))
    with pytest.raises(ValueError, match="unknown init"):
        km.fit(x, 2, init="random")
    assert km.actors == [] and km.restarts == 0
    # object refs are validated by the actors as they load, still before the fit starts
    with pytest.raises(ValueError, match="shard 1: .*NaN/inf"):
        km.fit([ray.put(x), ray.put(bad)], 2)
    with pytest.raises(ValueError, match="different dimensions"):
        km.fit([ray.put(x), ray.put(np.ones((10, 4), np.float32))], 2)
    with pytest.raises(ValueError, match="nccl"):
        DistributedKMeans(backend="nccl")
    from interestrec.cluster.config import ClusterConfig

    with pytest.raises(ValueError, match="cluster.backend"):
        ClusterConfig(backend="nccl")


def test_one_scheduling_strategy_per_rank(ray_local, data):
    """A list of strategies places each rank by its own; its length must match the actors."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    node = ray.get_runtime_context().get_node_id()
    x, _ = data
    ref = DistributedKMeans(2, num_cpus=0.5).fit(x, 16, seed=0, max_iter=5)
    pinned = DistributedKMeans(2, num_cpus=0.5, scheduling=[NodeAffinitySchedulingStrategy(node, soft=False), "SPREAD"])
    r = pinned.fit(x, 16, seed=0, max_iter=5)
    np.testing.assert_array_equal(r.centroids, ref.centroids)
    with pytest.raises(ValueError, match="one strategy per actor: got 1 for 2"):
        DistributedKMeans(2, scheduling=["SPREAD"])


@pytest.mark.parametrize("victim", [1, 0])
@pytest.mark.slow  # actor faults: several gloo groups formed and torn down
def test_actor_killed_mid_fit_resumes_to_the_same_result(ray_local, tmp_path, victim):
    """Kill a shard actor mid-fit (rank 0 also hosts the group's store and writes the checkpoints)."""
    import ray

    rng = np.random.default_rng(0)
    x = rng.random((60000, 32), dtype=np.float32)  # no structure: many slow Lloyd iterations
    kw = dict(seed=0, tol=0, max_iter=40)
    ref = DistributedKMeans(2, num_cpus=0.5).fit(x, 64, **kw)
    ckpt = str(tmp_path / "ckpt")
    km = DistributedKMeans(2, num_cpus=0.5, checkpoint_dir=(tmp_path / "ckpt").as_uri(), grace_s=20)  # any pyarrow URI
    out: dict = {}
    th = threading.Thread(target=lambda: out.update(r=km.fit(x, 64, **kw)))
    th.start()
    deadline = time.time() + 120
    state = os.path.join(ckpt, "state.json")
    while time.time() < deadline:
        try:
            if json.load(open(state))["n_iter"] >= 3:
                break
        except (OSError, ValueError):
            pass
        time.sleep(0.002)
    killed_at = json.load(open(state))["n_iter"]
    ray.kill(km.actors[victim])
    th.join(timeout=300)
    r = out["r"]
    assert killed_at < ref.n_iter and km.restarts == 1
    assert r.n_iter == ref.n_iter == 40
    np.testing.assert_array_equal(r.centroids, ref.centroids)
    np.testing.assert_array_equal(r.labels, ref.labels)
    assert r.inertia == ref.inertia and r.history == ref.history


@pytest.mark.parametrize("phase", ["load", "group formation"])
@pytest.mark.slow  # actor faults: several gloo groups formed and torn down
def test_actor_lost_before_the_loop_is_replaced(ray_local, phase):
    """An actor that dies while shards load or the gloo group forms is replaced; the result is unchanged."""
    import ray

    class Flaky(DistributedKMeans):
        killed = False

        def _kill_once(self, rank: int) -> None:
            if not self.killed:
                self.killed = True
                ray.kill(self.actors[rank])

        def _load(self, ranks, parts, column, metric):
            if phase == "load":
                self._kill_once(1)
            return super()._load(ranks, parts, column, metric)

        def _form_group(self):
            if phase == "group formation":
                self._kill_once(0)  # rank 0 hosts the group's store
            return super()._form_group()

    x = np.random.default_rng(1).random((3000, 8), dtype=np.float32)
    ref = DistributedKMeans(2, num_cpus=0.5).fit(x, 5, seed=0, max_iter=10)
    km = Flaky(2, num_cpus=0.5, grace_s=10)
    r = km.fit(x, 5, seed=0, max_iter=10)
    assert km.killed and km.restarts == 1
    np.testing.assert_array_equal(r.centroids, ref.centroids)
    np.testing.assert_array_equal(r.labels, ref.labels)
