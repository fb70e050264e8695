"""The ``cluster`` stage end to end on a synthetic ``encode/users.parquet`` with planted clusters."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from interestrec import artifacts
from interestrec.cluster.config import ClusterConfig
from interestrec.config import PipelineConfig
from interestrec.stages import StageContext, StageError, run_stage

ROOT = Path(__file__).resolve().parents[1]


def write_users(out: Path, n: int = 900, k: int = 6, d: int = 32, seed: int = 0) -> np.ndarray:
    """Planted directions on the unit sphere; window -1 rows plus window-0 rows that must be ignored."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(k, d))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    y = rng.integers(0, k, n)
    v = centres[y] + 0.08 * rng.normal(size=(n, d))
    v = (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)
    ids = rng.permutation(np.arange(1000, 1000 + n)).astype(np.int64)
    noise = rng.normal(size=(n, d)).astype(np.float32)  # window-0 vectors: pure noise
    table = pa.table({
        "user_id": pa.array(np.concatenate([ids, ids]), pa.int64()),
        "window": pa.array(np.concatenate([np.full(n, -1), np.zeros(n)]).astype(np.int32)),
        "vector": artifacts.vectors_to_arrow(np.concatenate([v, noise])),
        "n_events": pa.array(np.full(2 * n, 5, np.int32)),
    })
    artifacts.write_parquet(str(out / "encode" / "users.parquet"), table)
    return dict(zip(ids.tolist(), y.tolist()))


def ctx_for(out: Path, **cluster) -> StageContext:
    cfg = dataclasses.replace(PipelineConfig(), cluster=ClusterConfig(**cluster))
    return StageContext(out=str(out), config=cfg)


def test_auto_k_stage_writes_declared_artifacts(ray_local, tmp_path):
    from sklearn.metrics import adjusted_rand_score

    truth = write_users(tmp_path)
    s = run_stage(ctx_for(tmp_path, k="auto", k_grid=(3, 4, 6, 8, 10), metric="spherical",
                          num_actors=2, alternatives=("ward", "gmm")), "cluster")
    assert s["k"] == 6 and "K=6" in s["k_reason"]
    assert [g["k"] for g in s["k_grid"]] == [3, 4, 6, 8, 10]
    for key in ("silhouette", "davies_bouldin", "calinski_harabasz", "mean_centroid_distance", "sizes",
                "n_iter", "inertia"):
        assert s[key] is not None, key
    assert s["silhouette"] > 0.7 and sum(s["sizes"]) == 900 and s["users"] == 900
    c = artifacts.read_npy(str(tmp_path / "cluster" / "centroids.npy"))
    assert c.shape == (6, 32) and c.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(c, axis=1), 1.0, atol=1e-5)
    a = artifacts.read_parquet(str(tmp_path / "cluster" / "assignments.parquet"))
    assert a.schema.field("user_id").type == pa.int64() and a.schema.field("cluster").type == pa.int32()
    assert a.schema.field("distance").type == pa.float32()
    uid = a.column("user_id").to_numpy()
    assert len(uid) == 900 and np.all(np.diff(uid) > 0)
    lab = a.column("cluster").to_numpy()
    assert adjusted_rand_score([truth[u] for u in uid], lab) > 0.99
    assert np.bincount(lab, minlength=6).tolist() == s["sizes"]
    assert s["alternatives"]["ward"]["ari"] > 0.9 and "gmm" in s["alternatives"]
    summary = artifacts.read_json(str(tmp_path / "cluster" / "summary.json"))
    assert summary["k"] == 6 and "_run" in summary


def test_fixed_k_and_command_line_entry_point(ray_local, tmp_path):
    from interestrec.cli import main

    write_users(tmp_path, n=400, k=4, seed=1)
    rc = main(["run", "--stages", "cluster", "--out", str(tmp_path), "--set", "cluster.k=5",
               "--set", "cluster.metric=euclidean", "--set", "cluster.num_actors=1", "--config", ""])
    assert rc == 0
    s = artifacts.read_json(str(tmp_path / "cluster" / "summary.json"))
    assert s["k"] == 5 and s["k_grid"] == [] and "config" in s["k_reason"] and s["metric"] == "euclidean"
    assert len(s["sizes"]) == 5 and sum(s["sizes"]) == 400


def test_missing_or_empty_input_is_a_clear_stage_error(ray_local, tmp_path):
    with pytest.raises(StageError, match="run the encode stage first"):
        run_stage(ctx_for(tmp_path), "cluster")
    table = pa.table({"user_id": pa.array([1], pa.int64()), "window": pa.array([3], pa.int32()),
                      "vector": artifacts.vectors_to_arrow(np.ones((1, 4), np.float32))})
    artifacts.write_parquet(str(tmp_path / "encode" / "users.parquet"), table)
    with pytest.raises(StageError, match="window == -1"):
        run_stage(ctx_for(tmp_path), "cluster")


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match="cluster.k"):
        ClusterConfig(k="many")
    with pytest.raises(ValueError, match="alternatives"):
        ClusterConfig(alternatives=("kmedoids",))
    with pytest.raises(ValueError, match="metric"):
        ClusterConfig(metric="manhattan")
