"""Adapt stage: train-only pairs, InfoNCE, Ray Train checkpoints / resume / run names / storage, export, rows."""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import pytest

from fixtures.adapt import HELD, N_ITEMS, _all_pairs_loss, _cfg, _job, write_fixture
from interestrec import artifacts
from interestrec.adapt.config import AdaptConfig


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> str:
    out = str(tmp_path_factory.mktemp("adapt-tiny"))
    write_fixture(out)
    return out


def test_config_is_validated_and_composed():
    from interestrec.config import ConfigError, PipelineConfig, from_mapping

    with pytest.raises(ValueError, match="adapt.objective"):
        AdaptConfig(objective="mlm")
    with pytest.raises(ValueError, match="adapt.pair_kinds"):
        AdaptConfig(pair_kinds=("random",))
    with pytest.raises(ValueError, match="adapt.batch_size"):
        AdaptConfig(batch_size=1)
    with pytest.raises(ConfigError, match="lora_rank"):
        from_mapping(PipelineConfig, {"adapt": {"lora_rank": 4}})
    cfg = from_mapping(PipelineConfig, {"adapt": {"objective": "contrastive", "pair_kinds": ["cooccur"]}})
    assert cfg.adapt.pair_kinds == ("cooccur",) and cfg.adapt.trains_transformer and not cfg.adapt.trains_projection


def test_pairs_use_train_events_only_and_text_has_no_tags(tiny):
    from interestrec.adapt.pairs import leak_free_texts, pairs_from_ingest, train_sequences
    from interestrec.data import load_ingest

    art = load_ingest(artifacts.join(tiny, "ingest"))
    pairs = pairs_from_ingest(art.events, ("context", "cooccur"), 3, 10_000)
    assert len(pairs) > 0 and set(pairs.kind) == {"context", "cooccur"}
    assert not np.isin(pairs.anchor, HELD).any() and not np.isin(pairs.positive, HELD).any()
    user, item = train_sequences(art.events)
    consecutive = {(int(a), int(b)) for a, b, u1, u2 in zip(item[:-1], item[1:], user[:-1], user[1:]) if u1 == u2}
    assert {(int(a), int(p)) for a, p in zip(pairs.anchor[:, 0], pairs.positive)} <= consecutive
    ids, texts = leak_free_texts(art.items)
    assert len(ids) == N_ITEMS + 3 and not any("Tags" in t or "leaky" in t for t in texts)
    assert texts[0] == "Galaxy Raiders 0 (1990). Genres: Sci-Fi, Action."


def test_build_pairs_matches_a_per_user_loop():
    from interestrec.adapt.pairs import build_pairs

    rng = np.random.default_rng(1)
    user = np.sort(rng.integers(0, 6, 60))
    item = rng.integers(0, 9, 60)
    pairs = build_pairs(user, item, ("context", "cooccur"), 3, 10_000)
    expect = set()
    for u in np.unique(user):
        seq = item[user == u]
        for t in range(1, len(seq)):
            ctx = tuple(int(x) for x in seq[max(0, t - 3):t][::-1]) + (-1,) * max(0, 3 - t)
            expect.add(("context", ctx, int(seq[t])))
            if seq[t - 1] != seq[t]:
                expect.add(("cooccur", (int(seq[t - 1]), -1, -1), int(seq[t])))
    got = {(k, tuple(int(x) for x in a), int(p)) for k, a, p in zip(pairs.kind, pairs.anchor, pairs.positive)}
    assert got == expect
    few = build_pairs(user, item, ("context", "cooccur"), 3, 10, seed=3)
    assert len(few) == 10 and set(few.kind) == {"context", "cooccur"}


def test_projection_matches_its_numpy_reference():
    import torch

    from interestrec.adapt.model import Projection, project_reference

    torch.manual_seed(0)
    m = Projection(8, 16)
    torch.nn.init.normal_(m.down.weight)
    x = np.random.default_rng(0).standard_normal((5, 8)).astype(np.float32)
    with torch.no_grad():
        fast = m.project(torch.as_tensor(x)).numpy()
    ref = project_reference({k: v.numpy() for k, v in m.state_dict().items()}, x)
    np.testing.assert_allclose(fast, ref, atol=1e-5)


@pytest.mark.slow
def test_infonce_loss_decreases_on_planted_pairs(tiny):
    from interestrec.adapt.train import Batches, build_adapt_model, fit_local

    for objective, cfg in (("projection", _cfg(projection_epochs=8, projection_max_pairs=64)),
                           ("contrastive", _cfg(epochs=3, lr=5e-3))):
        job = _job(tiny, cfg, objective)
        before = _all_pairs_loss(build_adapt_model(job, Batches(job)), job)
        model, curve = fit_local(job)
        assert len(curve) == cfg.schedule(objective)[1]
        assert _all_pairs_loss(model, job) < 0.95 * before, objective


def test_item_level_scores_match_reference_and_last_items():
    from interestrec.evaluate.base import Interactions
    from interestrec.evaluate.models.adapt import (
        Similarities,
        item_level_scores,
        item_level_scores_reference,
        last_items,
    )

    rng = np.random.default_rng(0)
    v = rng.standard_normal((12, 5)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    sims = Similarities()
    sims.vectors, sims.full = v, v @ v.T
    hist = np.array([[3, 1, 4], [5, -1, -1], [-1, -1, -1]])
    w = np.tile(0.5 ** (np.arange(3) / 2.0), (3, 1)).astype(np.float32)
    for agg in ("sum", "max"):
        np.testing.assert_allclose(item_level_scores(hist, w, sims, agg), item_level_scores_reference(hist, w, v, agg),
                                   atol=1e-5)
    data = Interactions(user_ids=np.arange(2), item_ids=np.arange(12), train=None, seq_user=np.array([0, 0, 0, 1]),
                        seq_item=np.array([7, 2, 9, 4]), seq_time=np.array([1, 2, 3, 5]), target=np.array([-1, -1]))
    np.testing.assert_array_equal(last_items(data, 2), [[9, 2], [4, -1]])


def test_storage_path_is_passed_unchanged():
    from interestrec.adapt.stage import storage_path

    assert storage_path(AdaptConfig(storage_path="s3://bucket/runs"), "/x/adapt") == "s3://bucket/runs"
    assert storage_path(AdaptConfig(), "/x/adapt") == "/x/adapt/ray_train"


def test_local_output_is_refused_on_a_multi_node_cluster(monkeypatch):
    import interestrec.train.storage
    from interestrec.adapt.stage import storage_path
    from interestrec.train import StorageError

    monkeypatch.setattr(interestrec.train.storage, "cluster_nodes", lambda: [{"Alive": True}, {"Alive": True}])
    with pytest.raises(StorageError, match=r"adapt: 2 Ray nodes but the output /x/adapt is local"):
        storage_path(AdaptConfig(num_workers=2), "/x/adapt")
    assert storage_path(AdaptConfig(num_workers=2, storage_path="s3://bucket/runs"), "/x/adapt") == "s3://bucket/runs"
    assert storage_path(AdaptConfig(num_workers=1), "/x/adapt") == "/x/adapt/ray_train"


@pytest.fixture(scope="module")
def staged(tiny, ray_local):
    from interestrec.adapt.stage import run
    from interestrec.config import PipelineConfig
    from interestrec.stages import StageContext

    cfg = PipelineConfig(adapt=_cfg())
    return tiny, cfg.adapt, run(StageContext(out=tiny, config=cfg))


@pytest.mark.slow
def test_stage_checkpoints_every_epoch_and_exports_a_model_the_encoder_loads(staged):
    from interestrec.encode.encoder import TextEncoder

    out, cfg, summary = staged
    for objective in ("projection", "contrastive"):
        part = summary[objective]
        run_dir = os.path.dirname(part["checkpoint"])
        ckpts = sorted(d for d in os.listdir(run_dir) if d.startswith("checkpoint_") and os.path.isdir(os.path.join(run_dir, d)))
        assert len(ckpts) == part["epochs"] == cfg.schedule(objective)[1]
        for d in ckpts:
            assert sorted(os.listdir(os.path.join(run_dir, d))) == ["model.safetensors", "state.json"]
        assert part["resumed_from"] == 0 and len(part["losses"]) == part["epochs"]
    model_dir = summary["contrastive"]["model_dir"]
    files = os.listdir(model_dir)
    assert "model.safetensors" in files and "tokenizer.json" in files
    assert not any(f.endswith((".bin", ".pt", ".pkl")) for f in files)
    texts = ["Galaxy Raiders 2 (1992). Genres: Sci-Fi, Action.", "Cold Item (1991). Genres: Documentary."]
    base, adapted = TextEncoder(None, device="cpu").encode(texts), TextEncoder(model_dir, device="cpu").encode(texts)
    np.testing.assert_allclose(np.linalg.norm(adapted, axis=1), 1.0, atol=1e-5)
    assert np.abs(base - adapted).max() > 1e-3
    for name, expect in (("items_adapted.parquet", adapted), ("items_frozen.parquet", base)):
        t = artifacts.read_parquet(artifacts.join(out, "adapt", name))
        ids = t["item_id"].to_numpy()
        vec = artifacts.arrow_to_vectors(t["vector"])
        np.testing.assert_allclose(vec[np.searchsorted(ids, [1002, 1200])], expect, atol=1e-4)
    w = artifacts.read_safetensors(artifacts.join(out, "adapt", "projection", "model.safetensors"))
    assert w["down.weight"].shape == (384, cfg.hidden) and np.abs(w["down.weight"]).max() > 0


@pytest.mark.slow
def test_rows_score_every_item_including_cold_ones(staged):
    import interestrec.evaluate.models  # noqa: F401  (registers the rows)
    from interestrec.data import load_ingest
    from interestrec.evaluate.base import REGISTRY
    from interestrec.evaluate.data import build_interactions
    from interestrec.evaluate.protocol import evaluate_model

    out, _, _ = staged
    art = load_ingest(artifacts.join(out, "ingest"))
    valid = build_interactions(art.events, art.items["item_id"].to_numpy(), "valid", out)
    cold = int(np.searchsorted(valid.item_ids, 1200))
    for name in ("llm_frozen", "llm_adapted", "llm_projection"):
        for params in ({"last": 3, "half_life": 2.0, "agg": "sum"}, {"last": 5, "half_life": 1e6, "agg": "max"}):
            model = REGISTRY[name](**params).fit(valid)
            s = model.score(np.arange(valid.n_users))
            assert s.shape == (valid.n_users, valid.n_items) and np.isfinite(s).all()
            assert np.abs(s[:, cold]).min() > 0  # an item nobody interacted with is scored by content
            assert 0.0 <= evaluate_model(model, valid, (10,))["ndcg@10"] <= 1.0


@pytest.mark.slow
def test_rerun_on_changed_data_trains_from_scratch(tmp_path, ray_local):
    from interestrec.adapt.stage import run
    from interestrec.config import PipelineConfig
    from interestrec.stages import StageContext

    out = str(tmp_path)
    write_fixture(out)
    ctx = StageContext(out=out, config=PipelineConfig(adapt=_cfg(objective="projection")))
    first = run(ctx)["projection"]
    again = run(ctx)["projection"]  # same inputs and config: the finished run is found, nothing retrained
    assert again["run_name"] == first["run_name"] and again["checkpoint"] == first["checkpoint"]
    write_fixture(out, extra_user=True)
    second = run(ctx)["projection"]
    assert second["run_name"] != first["run_name"]
    assert second["resumed_from"] == 0 and second["epochs"] == 3
    assert len([d for d in os.listdir(os.path.dirname(second["checkpoint"])) if d.startswith("checkpoint_2")]) == 3
    assert not os.path.exists(artifacts.join(out, "adapt", "items_adapted.parquet"))


class KillWorkerOnce:
    """Ray Train callback (on the controller): SIGKILL the rank-0 worker process after its first checkpoint."""

    def __init__(self, marker: str):
        self.marker = marker

    def after_report(self, run_context, metrics, checkpoint):
        import signal

        if checkpoint is not None and not os.path.exists(self.marker):
            open(self.marker, "w").close()
            os.kill(int(metrics[0]["pid"]), signal.SIGKILL)


@pytest.mark.slow
def test_worker_killed_mid_run_resumes_from_the_last_checkpoint(tiny, ray_local, tmp_path):
    import sys

    import ray.cloudpickle
    from ray.train import UserCallback

    from interestrec.adapt.stage import read_checkpoint, train_with_ray

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    callback = type("KillOnce", (KillWorkerOnce, UserCallback), {})(str(tmp_path / "killed"))
    job = _job(tiny, _cfg(epochs=3, max_failures=1), "contrastive")
    result = train_with_ray(job, str(tmp_path / "storage"), "kill-test", callbacks=(callback,))
    assert (tmp_path / "killed").exists()
    _, state = read_checkpoint(result.checkpoint)
    assert [m["epoch"] for m in state["curve"]] == [0, 1, 2]
    assert state["resumed_from"] == 1  # the restarted worker group began at epoch 1


@pytest.mark.slow
def test_training_error_carries_the_workers_message(tiny, ray_local, tmp_path):
    from interestrec.adapt.stage import AdaptTrainingError, train_with_ray

    job = dataclasses.replace(_job(tiny, _cfg(max_failures=0), "projection"), pairs_path=str(tmp_path / "nope.parquet"))
    with pytest.raises(AdaptTrainingError, match=r"adapt \(projection\) training failed on rank 0: \w+: .*nope\.parquet"):
        train_with_ray(job, str(tmp_path / "storage"), "error-test")
