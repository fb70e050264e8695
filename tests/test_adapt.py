"""Adapt stage: train-only pairs, InfoNCE, Ray Train checkpoints / resume / run names / storage, export, rows."""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import pytest

from interestrec import artifacts
from interestrec.adapt.config import AdaptConfig

N_USERS, PER_USER, N_ITEMS = 16, 8, 24
T0 = 1_500_000_000
HELD = (1100, 1101)  # items that only ever appear in valid / test events
TOPICS = (("Galaxy Raiders", ["Sci-Fi", "Action"]), ("Summer Letters", ["Romance", "Drama"]))


def write_fixture(out: str, seed: int = 0, extra_user: bool = False) -> dict:
    """A tiny ingest output with two planted taste groups (even users: sci-fi items, odd: romance).

    Every user's last two interactions (valid, test) are the ``HELD`` items, which no train event
    touches, so any pair built from a valid / test event is visible. ``extra_user`` adds one more
    user's train events (changed input data).
    """
    import pyarrow as pa

    from interestrec.data.schema import event_schema, item_schema

    rng = np.random.default_rng(seed)
    rows = []
    for u in range(N_USERS + int(extra_user)):
        pool = np.arange(u % 2, N_ITEMS, 2)
        items = [1000 + int(i) for i in rng.choice(pool, PER_USER - 2, replace=False)] + list(HELD)
        for n, i in enumerate(items):
            split = "test" if n == PER_USER - 1 else "valid" if n == PER_USER - 2 else "train"
            rows.append((100 + u, i, T0 + u * 10_000 + n * 100, "rate", 4.0, None, split))
        rows.append((100 + u, items[-1], T0 + u * 10_000 + 5_000, "tag", None, "late", "test"))
    c = list(zip(*rows))
    events = pa.table({
        "user_id": pa.array(c[0], pa.int64()), "item_id": pa.array(c[1], pa.int64()),
        "timestamp": pa.array(c[2], pa.int64()), "event": pa.array(c[3], pa.string()),
        "value": pa.array(c[4], pa.float32()), "text": pa.array(c[5], pa.string()),
        "split": pa.array(c[6], pa.string()), "window": pa.array([0] * len(rows), pa.int32()),
    }, schema=event_schema(with_split=True))
    ids = list(range(1000, 1000 + N_ITEMS)) + list(HELD) + [1200]  # 1200: nobody interacts (cold)
    titles = [f"{TOPICS[i % 2][0]} {i}" for i in range(N_ITEMS)] + ["Held Out A", "Held Out B", "Cold Item"]
    genres = [TOPICS[i % 2][1] for i in range(N_ITEMS)] + [["Documentary"]] * 3
    items = pa.table({"item_id": pa.array(ids, pa.int64()), "title": titles,
                      "year": pa.array([1990 + i % 5 for i in range(len(ids))], pa.int32()),
                      "genres": genres, "tags": [["leaky-tag"]] * len(ids)}, schema=item_schema())
    windows = pa.table({"window": pa.array([0], pa.int32()), "start": pa.array([T0], pa.int64()),
                        "end": pa.array([T0 + 10**7], pa.int64()), "events": pa.array([len(rows)], pa.int64())})
    for name, t in (("events", events), ("items", items), ("windows", windows)):
        artifacts.write_parquet(artifacts.join(out, "ingest", f"{name}.parquet"), t)
    return {"events": events, "items": items}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> str:
    out = str(tmp_path_factory.mktemp("adapt-tiny"))
    write_fixture(out)
    return out


def _cfg(**kw) -> AdaptConfig:
    base = dict(objective="both", lora_r=4, lora_layers=1, context_items=3, max_pairs=32, epochs=2, batch_size=16,
                max_tokens=48, lr=2e-3, projection_epochs=3, projection_batch_size=32, projection_lr=5e-3, hidden=32,
                threads=1, cpus_per_worker=0.5, max_failures=1, encode_batch=32)
    base.update(kw)
    return AdaptConfig(**base)


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


def _job(out: str, cfg: AdaptConfig, objective: str, model_path: str | None = None):
    """Write the stage's training inputs for ``out`` and return the job (no Ray; the packaged model by default)."""
    import pyarrow as pa

    from interestrec.adapt.pairs import leak_free_texts, pairs_from_ingest, to_table
    from interestrec.adapt.train import AdaptJob
    from interestrec.data import load_ingest
    from interestrec.encode.encoder import default_model_path

    art = load_ingest(artifacts.join(out, "ingest"))
    ids, texts = leak_free_texts(art.items)
    vec = np.random.default_rng(0).standard_normal((len(ids), 16)).astype(np.float32)
    vec /= np.linalg.norm(vec, axis=1, keepdims=True)
    d = artifacts.join(out, "job-" + objective)
    artifacts.write_parquet(artifacts.join(d, "items.parquet"), pa.table({
        "item_id": ids, "text": texts, "vector": artifacts.vectors_to_arrow(vec)}))
    pairs = pairs_from_ingest(art.events, cfg.pair_kinds, cfg.context_items, cfg.schedule(objective)[0], cfg.seed)
    artifacts.write_parquet(artifacts.join(d, "pairs.parquet"), to_table(pairs))
    return AdaptJob(adapt=cfg, objective=objective, pairs_path=artifacts.join(d, "pairs.parquet"),
                    items_path=artifacts.join(d, "items.parquet"), model_path=model_path or default_model_path())


def _all_pairs_loss(model, job) -> float:
    """InfoNCE over every pair at once (one batch), in eval mode."""
    import torch

    from interestrec.adapt.train import Batches, pair_loss

    b = Batches(job)
    model.eval()
    with torch.no_grad():
        return float(pair_loss(model, b.inputs(np.arange(b.n)), job.objective, job.adapt.temperature))


@pytest.mark.slow
def test_infonce_loss_decreases_on_planted_pairs(tiny):
    from interestrec.adapt.train import Batches, build_model, fit_local

    for objective, cfg in (("projection", _cfg(projection_epochs=8, projection_max_pairs=64)),
                           ("contrastive", _cfg(epochs=3, lr=5e-3))):
        job = _job(tiny, cfg, objective)
        before = _all_pairs_loss(build_model(job, Batches(job)), job)
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
