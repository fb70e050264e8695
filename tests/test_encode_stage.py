"""The encode stage end to end on a tiny ingest-format fixture (``fixtures.ingest.write_ingest``; real Ray, real model)."""

import dataclasses

import numpy as np
import pyarrow as pa
import pytest

from fixtures.ingest import write_ingest
from interestrec import artifacts
from interestrec.config import PipelineConfig
from interestrec.encode.config import EncodeConfig
from interestrec.encode.pooling import event_weights
from interestrec.graph.config import GraphConfig
from interestrec.stages import StageContext


def run_encode(tmp_path, extra_rows=(), **kw):
    from interestrec.encode.stage import run

    write_ingest(tmp_path, extra_rows)
    cfg = EncodeConfig(batch_size=4, num_cpus=1, device="cpu", **kw)
    return run(StageContext(out=str(tmp_path), config=dataclasses.replace(PipelineConfig(), encode=cfg)))


def users_table(tmp_path):
    t = artifacts.read_parquet(artifacts.join(str(tmp_path), "encode", "users.parquet"))
    assert t.schema.field("vector").type == pa.list_(pa.float32(), 384)
    return t


def test_pool_mode_train_only_vectors_items_and_counts(ray_local, tmp_path):
    from interestrec.encode.encoder import TextEncoder
    from interestrec.encode.phases import phase_item_texts

    s = run_encode(tmp_path, user_mode="pool", also_text=True, half_life_days=10.0)
    items = artifacts.read_parquet(artifacts.join(str(tmp_path), "encode", "items.parquet"))
    assert items["item_id"].to_pylist() == [1, 2, 3, 4, 5]
    iv = artifacts.arrow_to_vectors(items["vector"])
    ing = artifacts.join(str(tmp_path), "ingest")
    ids, texts = phase_item_texts(artifacts.read_parquet(artifacts.join(ing, "items.parquet")),
                                  artifacts.read_parquet(artifacts.join(ing, "events.parquet")), "serve")
    # tags come from tag events (the catalog's aggregated "pixar" is ignored once tag events exist)
    assert texts[0] == "Toy Story (1995). Genres: Animation, Children. Tags: cozy."
    np.testing.assert_allclose(iv, TextEncoder(device="cpu").encode(texts), atol=1e-5)
    for phase in ("valid", "test"):  # no tag event falls in valid/test here: every phase has the same vectors
        pv = artifacts.read_parquet(artifacts.join(str(tmp_path), "encode", f"items_{phase}.parquet"))
        np.testing.assert_allclose(artifacts.arrow_to_vectors(pv["vector"]), iv, atol=1e-6)
    assert s["item_texts_encoded"] == 5 and s["item_texts_changed"] == {"valid": 0, "test": 0}

    t = users_table(tmp_path)
    rows = {(u, w): r for r, (u, w) in enumerate(zip(t["user_id"].to_pylist(), t["window"].to_pylist()))}
    uv = artifacts.arrow_to_vectors(t["vector"])
    assert not np.isnan(uv).any()
    # user 1, window -1: train events only (valid/test items 3, 4 never leak), decayed to the last train event
    w = event_weights(np.array(["rate", "view", "tag"]), np.array([5.0, np.nan, np.nan]))
    w = w * 0.5 ** (np.array([11.0, 1.0, 0.0]) / 10.0)
    hand = w[0] * iv[0] + w[1] * iv[1] + w[2] * iv[0]
    np.testing.assert_allclose(uv[rows[(1, -1)]], hand / np.linalg.norm(hand), atol=1e-5)
    assert t["n_events"][rows[(1, -1)]].as_py() == 3
    interests = t["interests"][rows[(1, -1)]].as_py()
    assert interests and {i["medoid_item_id"] for i in interests} <= {1, 2}
    # user 3 has no train events: no window -1 row, counted; per-window rows from the lookback
    assert (3, -1) not in rows and s["users_without_train_events"] == 1
    assert {(1, 0), (1, 1), (2, 0), (2, 1), (3, 1)} <= set(rows) and t["interests"][rows[(1, 1)]].as_py() is None
    assert s["users"] == 2 and s["dim"] == 384 and s["items"] == 5 and s["window_rows"] == 5
    assert set(s["modes"]) == {"pool", "text"} and s["empty_histories"] == 0
    assert s["config_hash"] and s["texts_per_s"] > 0
    # the text-mode vectors are kept next to the pooled ones for comparison
    text = artifacts.read_parquet(artifacts.join(str(tmp_path), "encode", "users_text.parquet"))
    assert text["user_id"].to_pylist() == [1, 2]
    tv = artifacts.arrow_to_vectors(text["vector"])
    np.testing.assert_allclose(np.linalg.norm(tv, axis=1), 1.0, atol=1e-5)


def test_text_mode_empty_history_counted_not_nan(ray_local, tmp_path):
    from interestrec.encode.encoder import TextEncoder

    # budget too small for user 2's newest entry (the very long title): an empty history
    s = run_encode(tmp_path, user_mode="text", also_text=False, max_tokens=30)
    t = users_table(tmp_path)
    keys = list(zip(t["user_id"].to_pylist(), t["window"].to_pylist()))
    assert s["empty_histories"] == 1 and s["modes"]["text"]["empty_histories"] == 1
    assert set(s["modes"]) == {"pool", "text"} and s["user_mode"] == "text"
    assert (1, -1) in keys and (2, -1) not in keys and (2, 1) not in keys and (2, 0) in keys
    uv = artifacts.arrow_to_vectors(t["vector"])
    assert np.isfinite(uv).all()
    np.testing.assert_allclose(np.linalg.norm(uv, axis=1), 1.0, atol=1e-5)
    # user 1's window -1 vector is the encoding of its newest-first train history that fits 28 tokens
    enc = TextEncoder(device="cpu")
    expected = "tagged 'cozy': Toy Story (1995). Genres: Animation, Children. Tags: cozy."
    assert enc.count_tokens(expected) <= 28
    np.testing.assert_allclose(uv[keys.index((1, -1))], enc.encode([expected])[0], atol=1e-5)


def test_bad_mode_is_a_clear_error(tmp_path):
    from interestrec.configcheck import ConfigError

    with pytest.raises(ConfigError, match=r"encode\.user_mode must be one of \['pool', 'text'\], got 'llm'"):
        run_encode(tmp_path, user_mode="llm")


def test_a_test_period_tag_changes_no_evaluation_text_vector_graph_or_score(ray_local, tmp_path):
    """A tag that exists only in a test event: the serving text sees it, no evaluation phase does."""
    from interestrec.evaluate.data import build_interactions
    from interestrec.evaluate.models.llm import LLMVectors
    from interestrec.graph.training_graph import graph_for

    leak = [(3, 2, 161, "tag", None, "spoiler ending", "test", 1)]
    runs = {}
    for name, rows in (("clean", ()), ("leak", leak)):
        d = tmp_path / name
        runs[name] = (str(d), run_encode(d, extra_rows=rows, user_mode="pool", also_text=False))

    def vectors(name, file):
        t = artifacts.read_parquet(artifacts.join(runs[name][0], "encode", file))
        return artifacts.arrow_to_vectors(t["vector"])

    # item 2's serving text gains the tag (its vector moves); valid and test vectors are untouched
    assert runs["leak"][1]["item_texts_changed"] == {"valid": 1, "test": 1}
    assert runs["leak"][1]["item_texts_encoded"] == 6  # the 5 shared texts once, plus item 2's serving text
    assert np.abs(vectors("leak", "items.parquet")[1] - vectors("clean", "items.parquet")[1]).max() > 1e-3
    # (the same texts; only float rounding of a differently composed encoder batch may differ)
    for file in ("items_valid.parquet", "items_test.parquet"):
        np.testing.assert_allclose(vectors("leak", file), vectors("clean", file), atol=1e-6)
    for name in runs:  # the train-history user rows (window -1) use the train-only item vectors
        u = artifacts.read_parquet(artifacts.join(runs[name][0], "encode", "users.parquet"))
        runs[name] += (artifacts.arrow_to_vectors(u["vector"])[u["window"].to_numpy() == -1],)
    np.testing.assert_allclose(runs["leak"][2], runs["clean"][2], atol=1e-6)

    graphs, scores = {}, {}
    for name, (root, _, _) in runs.items():
        ing = artifacts.join(root, "ingest")
        events = artifacts.read_parquet(artifacts.join(ing, "events.parquet"))
        data = build_interactions(events, np.arange(1, 6), "test", root)
        graphs[name] = graph_for(data, GraphConfig(use_features=True))
        scores[name] = LLMVectors(half_life_days=180.0).fit(data).score(np.arange(data.n_users))
    assert graphs["leak"]["tag"].names == graphs["clean"]["tag"].names == ["cozy"]
    np.testing.assert_allclose(graphs["leak"]["item"].x.numpy(), graphs["clean"]["item"].x.numpy(), atol=1e-6)
    np.testing.assert_allclose(scores["leak"], scores["clean"], atol=1e-6)
    # the serving vectors do see the tag: reading them instead would have changed the score
    assert runs["leak"][1]["item_texts_changed"]["valid"] == 1
