"""API drift fails loudly: the package's Ray Data and torch/PyG entry points run with DeprecationWarning as an error.

A deprecated Ray or torch call (``map_batches(concurrency=…)``, a renamed PyG argument, …) is only a warning
today and a break tomorrow; here it is a failure now. The modules are imported before the filter is set, so
only what our calls trigger is judged (third-party import-time warnings are not ours to fix).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.sparse as sp

import interestrec.encode.ray_encode as ray_encode
from interestrec.encode.config import EncodeConfig
from interestrec.evaluate.base import Interactions
from interestrec.evaluate.models.lightgcn import LightGCNRecommender
from interestrec.evaluate.models.sasrec import SASRecRecommender
from interestrec.recommend.closed_form import ease_weights, l3ae_weights


def _errors_on_deprecation():
    ctx = warnings.catch_warnings()
    ctx.__enter__()
    warnings.simplefilter("error", DeprecationWarning)
    warnings.simplefilter("error", FutureWarning)
    return ctx


def _tiny() -> Interactions:
    rng = np.random.default_rng(0)
    u = np.repeat(np.arange(6), 4)
    i = rng.integers(0, 10, len(u))
    t = np.tile(np.arange(4), 6)
    x = sp.csr_matrix((np.ones(len(u), np.float32), (u, i)), shape=(6, 10))
    x.sum_duplicates()
    x.data[:] = 1.0
    return Interactions(np.arange(6), np.arange(10), x, u.astype(np.int64), i.astype(np.int64), t.astype(np.int64),
                        np.full(6, -1))


def test_the_filter_turns_a_deprecation_into_a_failure():
    ctx = _errors_on_deprecation()
    try:
        with pytest.raises(DeprecationWarning):
            warnings.warn("old API", DeprecationWarning, stacklevel=1)
    finally:
        ctx.__exit__(None, None, None)


def test_ray_data_encoding_pool_uses_no_deprecated_api(ray_local):
    cfg = EncodeConfig(batch_size=2, num_cpus=1, device="cpu")
    ctx = _errors_on_deprecation()
    try:
        ids, vecs = ray_encode.encode_texts(np.arange(3), ["a cozy film", "space opera", "a heist"], cfg)
    finally:
        ctx.__exit__(None, None, None)
    assert ids.tolist() == [0, 1, 2] and vecs.shape == (3, 384)
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)


def test_the_cluster_stage_reader_uses_no_deprecated_api(ray_local, tmp_path):
    import pyarrow as pa

    from interestrec import artifacts
    from interestrec.cluster.stage import _load

    vec = np.random.default_rng(0).normal(size=(6, 3)).astype(np.float32)
    artifacts.write_parquet(str(tmp_path / "users.parquet"), pa.table({
        "user_id": pa.array(np.arange(6), pa.int64()), "window": pa.array([-1, -1, -1, 0, 0, -1], pa.int32()),
        "vector": artifacts.vectors_to_arrow(vec)}))
    ctx = _errors_on_deprecation()
    try:
        _, n, x = _load(str(tmp_path / "users.parquet"), sample=100, seed=0, num_actors=2)
    finally:
        ctx.__exit__(None, None, None)
    assert n == 4 and x.shape == (4, 3)  # only the whole-history (window −1) rows


def test_torch_and_pyg_training_paths_use_no_deprecated_api():
    import torch_geometric.nn.models  # noqa: F401  (imported first: its import-time warnings are PyG's own)

    data = _tiny()
    ctx = _errors_on_deprecation()
    try:
        b = ease_weights(data.train, 10.0)
        b3 = l3ae_weights(data.train, np.random.default_rng(1).normal(size=(10, 4)).astype(np.float32), 10.0, 5.0)
        lgcn = LightGCNRecommender(dim=8, layers=2, epochs=2, batch=16, threads=1).fit(data)
        sas = SASRecRecommender(dim=8, blocks=1, epochs=2, batch=4, max_len=4, negatives=4, threads=1).fit(data)
        scores = sas.score(np.arange(6))
    finally:
        ctx.__exit__(None, None, None)
    assert b.shape == b3.shape == (10, 10) and np.allclose(np.diag(b), 0) and np.allclose(np.diag(b3), 0)
    assert lgcn.score(np.arange(6)).shape == scores.shape == (6, 10) and np.isfinite(scores).all()
    assert len(lgcn.losses) == 2 and len(sas.losses) == 2
