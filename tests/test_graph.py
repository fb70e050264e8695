"""Graph stage: knowledge-graph counts, the temporal sampler's invariants, training, Ray Train resume and DDP."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from fixtures.graph import N_ITEMS, N_USERS, PER_USER, T0, TINY, _full_loss, write_fixture
from interestrec import artifacts
from interestrec.graph.config import GraphConfig


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> str:
    out = str(tmp_path_factory.mktemp("graph-tiny"))
    write_fixture(out)
    return out


def test_graph_counts(tiny):
    from interestrec.data import load_ingest
    from interestrec.graph.kg import GraphParams
    from interestrec.graph.kg_tables import build_graph

    art = load_ingest(artifacts.join(tiny, "ingest"))
    enc = artifacts.read_parquet(artifacts.join(tiny, "encode", "items.parquet"))
    clusters = artifacts.read_parquet(artifacts.join(tiny, "cluster", "assignments.parquet"))
    g = build_graph(art.events, art.items, item_vectors=enc, clusters=clusters)
    assert g["user"].num_nodes == N_USERS and g["item"].num_nodes == N_ITEMS + 2
    assert g["genre"].names == ["Comedy", "Drama", "Romance"]
    assert g["decade"].names == [1980, 1990, 2000]
    # tags come from train-split tag events only: the test-period "late" and catalog-only tags are absent
    assert g["tag"].names == ["shared", "tag0", "tag1", "tag2"]
    assert g["cluster"].num_nodes == 2
    ev = art.events.to_pandas()
    n_train = int(((ev.split == "train") & (ev.event == "rate")).sum())
    assert g["user", "rates", "item"].edge_index.shape[1] == n_train == N_USERS * (PER_USER - 2)
    assert g["item", "has_genre", "genre"].edge_index.shape[1] == sum(1 if i % 2 == 0 else 2 for i in range(N_ITEMS + 2))
    assert g["item", "in_decade", "decade"].edge_index.shape[1] == N_ITEMS + 1  # one item has no year
    assert g["user", "uses_tag", "tag"].edge_index.shape[1] == 2 * N_USERS
    assert g["user", "in_cluster", "cluster"].edge_index.shape[1] == N_USERS
    for src, rel, dst in [e for e in g.edge_types if not e[1].startswith("rev_")]:
        fwd, rev = g[src, rel, dst].edge_index, g[dst, f"rev_{rel}", src].edge_index
        assert (fwd.flip(0) == rev).all()
    ui = g["user", "rates", "item"]
    assert ui.time.shape == ui.weight.shape == (n_train,)
    assert float(ui.weight.max()) <= 1.0 and float(ui.weight.min()) > 0
    # node ids map back to the original ids, features align with them
    assert g["item"].node_id.tolist() == art.items["item_id"].to_pylist()
    np.testing.assert_allclose(g["item"].x.numpy(), artifacts.arrow_to_vectors(enc["vector"]))
    # the test phase learns from train + valid
    g2 = build_graph(art.events, art.items, splits=("train", "valid"))
    assert g2["user", "rates", "item"].edge_index.shape[1] == N_USERS * (PER_USER - 1)
    assert "x" not in g2["item"]
    # user -recent-> item: each user's last 3 train interactions, pointing at the same rates edges
    g4 = build_graph(art.events, art.items, params=GraphParams(recent=3))
    rec, rates = g4["user", "recent", "item"], g4["user", "rates", "item"]
    assert rec.edge_index.shape[1] == 3 * N_USERS
    assert (rates.edge_index[:, rec.rates_id] == rec.edge_index).all() and (rates.time[rec.rates_id] == rec.time).all()
    for u in range(N_USERS):
        t_u = rates.time[rates.edge_index[0] == u]
        assert sorted(rec.time[rec.edge_index[0] == u].tolist()) == sorted(t_u.tolist())[-3:]
    # max_time drops everything at or after it
    g3 = build_graph(art.events, art.items, max_time=T0 + 5 * 10_000)
    assert int(g3["user", "rates", "item"].time.max()) < T0 + 5 * 10_000


def test_graph_bad_input(tiny):
    from interestrec.data import load_ingest
    from interestrec.graph.kg_tables import build_graph

    art = load_ingest(artifacts.join(tiny, "ingest"))
    with pytest.raises(ValueError, match="lacks columns"):
        build_graph(art.events.drop_columns(["split"]), art.items)
    with pytest.raises(ValueError, match="outside the node set"):
        build_graph(art.events, art.items, item_ids=np.arange(1000, 1005))
    with pytest.raises(ValueError, match="item_vectors must be"):
        build_graph(art.events, art.items, item_vectors=np.zeros((3, 4), np.float32))
    with pytest.raises(ValueError, match="graph.conv"):
        GraphConfig(conv="gcn")


def _random_temporal_graph(seed: int = 0):
    from interestrec.graph.kg import GraphInputs, assemble_graph

    rng = np.random.default_rng(seed)
    n_u, n_i, m = 40, 60, 900
    u, i = rng.integers(0, n_u, m), rng.integers(0, n_i, m)
    t = rng.integers(0, 1000, m)
    return assemble_graph(GraphInputs(np.arange(n_u), np.arange(n_i), u, i, t))


def test_sampler_never_yields_a_future_edge_and_respects_fanout():
    from interestrec.graph.sampler import TemporalNeighborSampler

    g = _random_temporal_graph()
    fanout = (5, 3)
    sampler = TemporalNeighborSampler(g, fanout)
    rng = np.random.default_rng(1)
    ei = g["user", "rates", "item"].edge_index.numpy()
    et = g["user", "rates", "item"].time.numpy()
    existing = {(int(a), int(b), int(c)) for a, b, c in zip(ei[0], ei[1], et)}
    seeds_u = rng.integers(0, 40, 64)
    seeds_t = rng.integers(0, 1000, 64)
    sub = sampler.sample({"user": (seeds_u, seeds_t), "item": (rng.integers(0, 60, 64), seeds_t)}, rng)
    assert (sub.n_id["user"][sub.seeds["user"]] == seeds_u).all()
    total_timed = 0
    for rel, local in sub.edge_index.items():
        src_t, _, dst_t = rel
        if local.shape[1] == 0:
            continue
        # every node inherits its tree's seed time; no sampled edge is at or after it
        src_time, dst_time = sub.seed_time[src_t][local[0]], sub.seed_time[dst_t][local[1]]
        assert (src_time == dst_time).all()
        times = sub.edge_time[rel]
        assert (times < dst_time).all(), f"{rel}: an edge at or after the supervision time was sampled"
        total_timed += len(times)
        # sampled edges exist in the graph with that time
        gs, gd = sub.n_id[src_t][local[0]], sub.n_id[dst_t][local[1]]
        for a, b, c in zip(gs, gd, times):
            key = (int(a), int(b), int(c)) if rel[1] == "rates" else (int(b), int(a), int(c))
            assert key in existing
        # fan-out: at most fanout[layer] neighbours per destination node; all of them when fewer are eligible
        per_dst = np.bincount(local[1], minlength=len(sub.n_id[dst_t]))
        assert per_dst.max() <= max(fanout)
    assert total_timed > 0
    # exactness against a brute-force count for the first hop of the user seeds
    rel = ("item", "rev_rates", "user")
    hop1 = sub.edge_index[rel][:, np.isin(sub.edge_index[rel][1], sub.seeds["user"])]
    got = np.bincount(hop1[1], minlength=len(seeds_u))[: len(seeds_u)]
    eligible = np.asarray([int(((ei[0] == u) & (et < t)).sum()) for u, t in zip(seeds_u, seeds_t)])
    np.testing.assert_array_equal(got, np.minimum(eligible, fanout[0]))
    # no edge drawn twice for one seed (sampling without replacement): each (item, time) at most as often as
    # the graph holds that (user, item, time) edge
    from collections import Counter

    multiplicity = Counter(zip(ei[0].tolist(), ei[1].tolist(), et.tolist()))
    hop1_time = sub.edge_time[rel][np.isin(sub.edge_index[rel][1], sub.seeds["user"])]
    drawn: dict[int, Counter] = {}
    for (s, d), t in zip(hop1.T, hop1_time):
        drawn.setdefault(int(d), Counter())[(int(sub.n_id["item"][s]), int(t))] += 1
    assert len(drawn) > 10
    for d, pairs in drawn.items():
        user = int(sub.n_id["user"][d])
        assert all(n <= multiplicity[(user, i, t)] for (i, t), n in pairs.items()), (user, pairs)


def test_sampler_rejects_bad_seeds():
    from interestrec.graph.sampler import TemporalNeighborSampler

    s = TemporalNeighborSampler(_random_temporal_graph(), (2,))
    with pytest.raises(ValueError, match="outside"):
        s.sample({"user": (np.array([99]), np.array([5]))}, np.random.default_rng(0))


@pytest.mark.parametrize("overrides", [{}, {"sampling": "neighbor"}, {"conv": "gat", "adversarial": True}])
def test_one_epoch_lowers_the_loss(tiny, overrides):
    import torch

    from interestrec.graph.train import build_graph_model, train_epochs
    from interestrec.graph.training_graph import graph_for, load_interactions

    torch.manual_seed(0)
    cfg = dataclasses.replace(TINY, epochs=1, batch_size=8, **overrides)
    data = load_interactions(tiny, "valid")
    graph = graph_for(data, cfg)
    assert "x" in graph["item"] and "x" in graph["user"]
    model = build_graph_model(graph, cfg)
    before = _full_loss(model, graph)
    curve = train_epochs(model, graph, data, cfg)
    after = _full_loss(model, graph)
    assert len(curve) == 1 and np.isfinite(curve[0]["loss"]) and 0 <= curve[0]["valid_ndcg@10"] <= 1
    assert after < before - 0.02, (before, after)


def test_apr_perturbation_raises_the_loss():
    import torch

    from interestrec.graph.model import apr_loss, bpr_loss, relative_perturbation

    torch.manual_seed(0)
    u, p, n = torch.randn(32, 8), torch.randn(32, 8), torch.randn(32, 4, 8)
    assert float(apr_loss(u, p, n, 0.3)) > float(bpr_loss(u, p, n))
    assert float(apr_loss(u, p, n, 0.0)) == pytest.approx(float(bpr_loss(u, p, n)))
    d = relative_perturbation(u, torch.randn(32, 8), 0.5)
    np.testing.assert_allclose(d.norm(dim=-1).numpy(), 0.5 * u.norm(dim=-1).numpy(), rtol=1e-5)


def test_checkpoint_state_roundtrip(tiny):
    import torch

    from interestrec.graph.ray_train import OPT_PREFIX
    from interestrec.graph.train import build_graph_model, make_optimizer, train_epochs
    from interestrec.graph.training_graph import graph_for, load_interactions
    from interestrec.train import load_state, state_arrays

    cfg = dataclasses.replace(TINY, epochs=1)
    data = load_interactions(tiny, "valid")
    graph = graph_for(data, cfg)
    model = build_graph_model(graph, cfg)
    opt = make_optimizer(model, cfg)
    train_epochs(model, graph, data, cfg, opt, validate=False)
    path = artifacts.join(tiny, "ckpt-test", "model.safetensors")
    artifacts.write_safetensors(path, state_arrays(model, opt, opt_prefix=OPT_PREFIX))
    torch.manual_seed(5)
    model2 = build_graph_model(graph, cfg)
    opt2 = make_optimizer(model2, cfg)
    load_state(model2, artifacts.read_safetensors(path), opt2, opt_prefix=OPT_PREFIX)
    for a, b in zip(model.state_dict().values(), model2.state_dict().values()):
        assert torch.equal(a, b)
    # one more identical epoch from both gives identical weights (optimizer state restored too)
    more = dataclasses.replace(cfg, epochs=2)
    train_epochs(model, graph, data, more, opt, start_epoch=1, validate=False)
    train_epochs(model2, graph, data, more, opt2, start_epoch=1, validate=False)
    for a, b in zip(model.state_dict().values(), model2.state_dict().values()):
        torch.testing.assert_close(a, b)


@pytest.mark.slow  # Ray Train fits
def test_ray_train_checkpoint_then_resume(tiny, ray_local, tmp_path):
    from interestrec.graph.stage import result_curve, train_with_ray
    from interestrec.graph.train import GraphJob

    storage = str(tmp_path / "runs")
    first = train_with_ray(GraphJob(dataclasses.replace(TINY, epochs=2), tiny), storage, name="resume")
    first_curve = result_curve(first)
    assert [m["epoch"] for m in first_curve] == [0, 1]
    assert artifacts.exists(artifacts.join(first.checkpoint.path, "model.safetensors"))
    state = artifacts.read_json(artifacts.join(first.checkpoint.path, "state.json"))
    assert state["epoch"] == 1
    second = train_with_ray(GraphJob(dataclasses.replace(TINY, epochs=4), tiny), storage, name="resume")
    assert [m["epoch"] for m in result_curve(second)] == [0, 1, 2, 3]
    assert second.metrics["resumed_from"] == 2  # continued after the last finished epoch
    assert result_curve(second)[:2] == first_curve  # the first run's epochs are carried over
    assert artifacts.read_json(artifacts.join(second.checkpoint.path, "state.json"))["epoch"] == 3


def _train_workers_alive() -> list[int]:
    """Pids of live Ray Train worker actors (from the GCS actor table: the tests run Ray without a dashboard)."""
    import ray

    table = ray._private.state.actors().values()
    return [a["Pid"] for a in table if a.get("ActorClassName") == "RayTrainWorker" and a.get("State") == "ALIVE"]


@pytest.mark.slow  # Ray Train fits
def test_worker_killed_mid_epoch_resumes_from_the_last_checkpoint(tiny, ray_local, tmp_path):
    """SIGKILL a Ray Train worker after the first checkpoint: the group restarts from it and finishes."""
    import os
    import signal
    import threading
    import time

    from interestrec.graph.stage import result_curve, train_with_ray
    from interestrec.graph.train import GraphJob

    storage = (tmp_path / "runs").as_uri()  # a file:// URI: passed to Ray Train unchanged
    epochs = 10
    cfg = dataclasses.replace(TINY, epochs=epochs, batch_size=4, negatives=16, companion=False, max_failures=1)
    box: dict = {}
    thread = threading.Thread(target=lambda: box.update(result=train_with_ray(GraphJob(cfg, tiny), storage, name="kill")))
    thread.start()
    run_dir = tmp_path / "runs" / "kill"
    deadline = time.time() + 120
    snapshot = run_dir / "checkpoint_manager_snapshot.json"  # written once a checkpoint is registered
    while time.time() < deadline and not snapshot.exists():
        time.sleep(0.05)
    assert snapshot.exists(), "no checkpoint was registered"
    pids = _train_workers_alive()
    assert len(pids) == 1
    os.kill(pids[0], signal.SIGKILL)
    thread.join(300)
    assert not thread.is_alive()
    result = box["result"]
    curve = result_curve(result)
    assert [m["epoch"] for m in curve] == list(range(epochs))  # same final epoch count, no epoch twice
    with result.checkpoint.as_directory() as d:
        starts = artifacts.read_json(os.path.join(d, "state.json"))["starts"]
    assert starts[0] == 0 and len(starts) == 2 and 1 <= starts[1] < epochs  # resumed after a finished epoch
    assert result.checkpoint.path.startswith(str(tmp_path / "runs"))


@pytest.mark.slow  # Ray Train fits
def test_worker_error_reaches_the_stage_with_its_message(tiny, ray_local, tmp_path):
    import shutil

    import pyarrow as pa

    from interestrec.graph.stage import TrainingError, train_with_ray
    from interestrec.graph.train import GraphJob
    from interestrec.stages import StageError

    bad = tmp_path / "bad"
    shutil.copytree(tiny, bad, ignore=shutil.ignore_patterns("graph"))
    artifacts.write_parquet(str(bad / "encode" / "items.parquet"), pa.table({"item_id": [1000], "embedding": [1.0]}))
    with pytest.raises(TrainingError, match=r"rank 0: ValueError: item_vectors table needs columns") as err:
        train_with_ray(GraphJob(dataclasses.replace(TINY, max_failures=0), str(bad)), str(tmp_path / "runs"), name="bad")
    assert isinstance(err.value, StageError)


@pytest.mark.slow  # Ray Train fits
def test_rerun_on_new_data_or_forced_trains_from_scratch(tmp_path, ray_local):
    from interestrec.config import PipelineConfig
    from interestrec.graph.stage import run, run_name
    from interestrec.stages import StageContext

    out = str(tmp_path / "out")
    write_fixture(out, seed=0)
    cfg = dataclasses.replace(PipelineConfig(), graph=dataclasses.replace(TINY, epochs=2, companion=False))
    ctx = StageContext(out=out, config=cfg)
    first = run(ctx)
    assert first["attempt_start_epochs"] == [0] and first["epochs"] == 2
    write_fixture(out, seed=1)  # new data: a new run, trained from epoch 0 (not the old run's final checkpoint)
    second = run(ctx)
    assert second["run"] != first["run"]
    assert second["attempt_start_epochs"] == [0] and second["epochs"] == 2
    assert second["final_loss"] != first["final_loss"]
    assert run_name(dataclasses.replace(ctx, config=dataclasses.replace(cfg, seed=cfg.seed + 7))) != second["run"]
    # the same inputs and config again (as with --force): trained again from scratch, same result
    forced = run(ctx)
    assert forced["run"] == second["run"] and forced["attempt_start_epochs"] == [0]
    assert forced["losses"] == pytest.approx(second["losses"], rel=1e-5)


@pytest.mark.slow  # Ray Train fits
def test_stage_two_workers(tiny, ray_local):
    from interestrec.config import PipelineConfig
    from interestrec.graph.stage import run
    from interestrec.stages import StageContext

    cfg = dataclasses.replace(PipelineConfig(), graph=dataclasses.replace(TINY, num_workers=2, epochs=2))
    summary = run(StageContext(out=tiny, config=cfg))
    assert summary["workers"] == 2 and summary["epochs"] == 2
    assert summary["nodes"]["user"] == N_USERS and summary["nodes"]["cluster"] == 2
    assert 0 <= summary["valid_ndcg@10"] <= 1
    assert set(summary["robustness"]) == {"eps", "bpr", "apr"}
    users = artifacts.read_parquet(artifacts.join(tiny, "graph", "users.parquet"))
    items = artifacts.read_parquet(artifacts.join(tiny, "graph", "items.parquet"))
    assert users["user_id"].to_pylist() == list(range(100, 100 + N_USERS))
    assert artifacts.arrow_to_vectors(items["vector"]).shape == (N_ITEMS + 2, TINY.hidden)
    weights = artifacts.read_safetensors(artifacts.join(tiny, "graph", "model.safetensors"))
    meta = artifacts.read_json(artifacts.join(tiny, "graph", "model.json"))
    assert meta["num_nodes"]["item"] == N_ITEMS + 2 and any(k.startswith("model.emb.item") for k in weights)
    assert len(artifacts.read_json(artifacts.join(tiny, "graph", "curve.json"))) == 2


def test_steps_from_end_and_recent_edges_match_brute_force():
    from interestrec.data.split import steps_from_end
    from interestrec.graph.kg import recent_edges

    rng = np.random.default_rng(3)
    u, t, i = rng.integers(0, 7, 200), rng.integers(0, 50, 200), rng.integers(0, 30, 200)
    got = steps_from_end(u, t, i)
    for n in range(200):
        same = (u == u[n])
        later = same & ((t > t[n]) | ((t == t[n]) & (i > i[n])) | ((t == t[n]) & (i == i[n]) & (np.arange(200) > n)))
        assert got[n] == later.sum()
    np.testing.assert_array_equal(recent_edges(u, t, i, 4), np.flatnonzero(got < 4))


def test_inductive_users_have_no_id_embedding(tiny):
    from interestrec.graph.train import build_graph_model
    from interestrec.graph.training_graph import graph_for, load_interactions

    cfg = dataclasses.replace(TINY, no_id=("user",))
    graph = graph_for(load_interactions(tiny, "valid"), cfg)
    model = build_graph_model(graph, cfg)
    assert "user" not in model.emb and "item" in model.emb
    from interestrec.graph.model import GraphRecommender

    with pytest.raises(ValueError, match="need an ID embedding"):
        GraphRecommender(graph.metadata(), {t: graph[t].num_nodes for t in graph.node_types}, {"user": 8}, no_id=("genre",))
    # without features the option falls back to ID embeddings instead of failing
    assert "user" in build_graph_model(graph_for(load_interactions(tiny, "valid"), dataclasses.replace(cfg, use_features=False)), cfg).emb


def test_storage_path_is_passed_unchanged_and_defaults_to_the_output():
    from interestrec.config import PipelineConfig
    from interestrec.graph.stage import storage_for
    from interestrec.stages import StageContext

    given = dataclasses.replace(PipelineConfig(), graph=dataclasses.replace(TINY, storage_path="s3://bucket/runs"))
    assert storage_for(StageContext(out="/tmp/x", config=given)) == "s3://bucket/runs"
    default = StageContext(out="s3://bucket/out", config=PipelineConfig())
    assert storage_for(default) == "s3://bucket/out/graph/ray_train"


def test_local_output_is_refused_on_a_multi_node_cluster(monkeypatch):
    import interestrec.train.storage
    from interestrec.config import PipelineConfig
    from interestrec.graph.stage import storage_for
    from interestrec.stages import StageContext
    from interestrec.train import StorageError

    monkeypatch.setattr(interestrec.train.storage, "cluster_nodes", lambda: [{"Alive": True}, {"Alive": True}])
    two = dataclasses.replace(PipelineConfig(), graph=dataclasses.replace(TINY, num_workers=2))
    with pytest.raises(StorageError, match=r"graph: 2 Ray nodes but the output /tmp/x is local"):
        storage_for(StageContext(out="/tmp/x", config=two))
    assert storage_for(StageContext(out="s3://bucket/out", config=two)) == "s3://bucket/out/graph/ray_train"
