"""The fused recommender, its artifact loader, real-time state and durable event log (library, no Ray).

The artifacts are ``fixtures.artifacts.make_artifacts``' (planted topics: each item belongs to one topic,
each user prefers one or two).
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import numpy as np
import pytest

from fixtures.artifacts import DAY, make_artifacts
from interestrec import artifacts


@pytest.fixture(scope="module")
def art_dir(tmp_path_factory) -> Path:
    return make_artifacts(tmp_path_factory.mktemp("rec") / "out")


@pytest.fixture(scope="module")
def service(art_dir):
    from interestrec.recommend.service import RecommenderService

    return RecommenderService(str(art_dir))


# ----------------------------------------------------------------------------------------------- loader
def test_load_aligns_every_artifact(art_dir):
    from interestrec.recommend import artifacts as ra

    a = ra.load(str(art_dir))
    assert a.version == "unpublished" and a.fused_params == {} and a.item_table is None
    assert list(a.item_ids) == sorted(a.item_ids) and len(a.item_ids) == 240 and len(a.user_ids) == 48
    items = artifacts.read_parquet(art_dir / "encode" / "items.parquet")
    vec = artifacts.arrow_to_vectors(items["vector"])
    j = 17
    assert np.allclose(a.item_vecs[np.searchsorted(a.item_ids, items["item_id"][j].as_py())], vec[j])
    assert set(a.ev_kind) <= {"view", "rate"}  # tags are not interactions
    assert (np.diff(a.ev_user) >= 0).all()
    assert a.graph_users.shape == (48, 8) and a.graph_items.shape == (240, 8)
    assert all(x is not None and x.shape[1] == 32 for x in a.user_interests)
    assign = artifacts.read_parquet(art_dir / "cluster" / "assignments.parquet").to_pandas()
    assert dict(zip(a.user_ids[a.user_cluster >= 0], a.user_cluster[a.user_cluster >= 0])) == dict(zip(assign.user_id, assign.cluster))


def test_load_published_version_and_tuned_weights(tmp_path):
    from interestrec.recommend import artifacts as ra

    root = make_artifacts(tmp_path / "out", version=3, graph=False, n_users=12, n_items=60)
    doc = json.loads((root / "manifest.json").read_text())
    doc["metrics"]["fused"]["params"] = {"weights": [0.25, 1.0, 0.5]}
    (root / "manifest.json").write_text(json.dumps(doc))
    a = ra.load(str(tmp_path / "out"))  # resolves publish/LATEST
    assert a.root.endswith("v3") and a.version == "3" and a.fused_params == {"weights": [0.25, 1.0, 0.5]}
    from interestrec.recommend.fused import as_weights

    assert as_weights(a.fused_params["weights"]) == (0.25, 1.0, 0.5, 0.0)  # published before the seq term
    with pytest.raises(ValueError, match="need 4 values"):
        as_weights([1.0, 2.0])
    from interestrec.recommend.fused import FusedParams

    fp = FusedParams.from_params(a.fused_params)
    assert fp.weights == (0.25, 1.0, 0.5, 0.0) and fp.lam == FusedParams().lam  # missing keys: defaults
    with pytest.raises(ValueError, match="unknown fused params"):
        FusedParams.from_params({"weigths": [1, 1, 1, 1]})
    assert a.graph_users is None


def test_missing_or_malformed_artifacts_are_named(tmp_path):
    from interestrec.recommend import artifacts as ra

    root = make_artifacts(tmp_path / "out", graph=False, n_users=12, n_items=60)
    os.remove(root / "cluster" / "assignments.parquet")
    with pytest.raises(ra.ArtifactError, match="cluster/assignments.parquet.*'cluster' stage"):
        ra.load(str(root))
    root2 = make_artifacts(tmp_path / "out2", graph=False, n_users=12, n_items=60)
    artifacts.write_npy(root2 / "cluster" / "centroids.npy", np.zeros((4, 7), np.float32))
    with pytest.raises(ra.ArtifactError, match=r"centroids.npy has shape \(4, 7\)"):
        ra.load(str(root2))


# ----------------------------------------------------------------------------------------------- fused score
def test_vectorised_score_matches_the_reference(service):
    from interestrec.recommend.fused import score_reference

    m = service.model
    users = np.array([0, 5, 11])
    s = m.score(users)
    rng = np.random.default_rng(1)
    for r, u in enumerate(users):
        for i in rng.choice(len(m.item_ids), 4, replace=False):
            assert s[r, i] == pytest.approx(score_reference(m, int(u), int(i)), rel=1e-4, abs=1e-4)
    nograph = type(m)(**{**m.__dict__, "graph_users": None, "graph_items": None})
    assert nograph.score(users[:1])[0, 3] == pytest.approx(score_reference(nograph, 0, 3), rel=1e-4, abs=1e-4)


def test_cluster_popularity_matches_a_loop():
    from interestrec.recommend.popularity import cluster_popularity

    rng = np.random.default_rng(0)
    users, items = rng.integers(0, 6, 50), rng.integers(0, 9, 50)
    times = rng.integers(0, 400 * DAY, 50)
    ucl = np.array([0, 1, 1, -1, 2, 0])
    got = cluster_popularity(users, items, times, ucl, 3, 9, half_life_days=100)
    want = np.zeros((4, 9))
    for u, i, t in zip(users, items, times):
        w = 0.5 ** ((times.max() - t) / (100 * DAY))
        if ucl[u] >= 0:
            want[ucl[u], i] += w
        want[3, i] += w
    want /= want.max(1, keepdims=True)
    assert np.allclose(got, want, atol=1e-6)


def test_user_time_popularity_is_causal_and_matches_a_loop():
    from interestrec.recommend.popularity import user_time_popularity

    rng = np.random.default_rng(3)
    users, items = rng.integers(0, 5, 40), rng.integers(0, 7, 40)
    times = rng.integers(0, 300, 40) * DAY
    ucl = np.array([0, 1, 0, -1, 1])
    got = user_time_popularity(5, users, items, times, ucl, 2, 7, half_life_days=50)
    for u in range(5):
        now = times[users == u].max()
        want = np.zeros(7)
        for v, i, t in zip(users, items, times):
            if t <= now and (ucl[u] < 0 or ucl[v] == ucl[u]):
                want[i] += 0.5 ** ((now - t) / (50 * DAY))
        assert np.allclose(got[u], want / want.max(), atol=1e-6), u


def test_top_k_filters_seen_orders_and_explains(service):
    m = service.model
    u = 3
    body = service.recommend(int(service.user_ids[u]), k=10)
    ids = [it["item_id"] for it in body["items"]]
    seen = set(m.item_ids[m.history[u]].tolist())
    assert len(ids) == 10 and not seen & set(ids)
    scores = [it["score"] for it in body["items"]]
    assert scores == sorted(scores, reverse=True)
    full = m.score(np.array([u]))[0]
    full[m.history[u]] = -np.inf
    assert ids[0] == int(m.item_ids[np.argmax(full)])
    for it in body["items"]:
        i = int(np.searchsorted(m.item_ids, it["item_id"]))
        hist = m.history[u][-200:]
        assert it["explanation"]["nearest_history_item"]["item_id"] == int(m.item_ids[hist[np.argmax(m.item_vecs[hist] @ m.item_vecs[i])]])
        sims = m.user_interests[u] @ m.item_vecs[i]
        assert it["explanation"]["interest"] == int(np.argmax(sims))
        assert it["explanation"]["cluster"] == body["cluster"]
    with_seen = service.recommend(int(service.user_ids[u]), k=len(m.item_ids), exclude_seen=False)
    assert len(with_seen["items"]) == len(m.item_ids)
    assert len(service.recommend(int(service.user_ids[u]), k=1000)["items"]) == len(m.item_ids) - len(seen)


def test_best_matches_a_full_sort_with_ties_and_excluded_items():
    from interestrec.recommend.topk import best, best_reference

    rng = np.random.default_rng(5)
    for n in (1, 7, 50, 400):
        scores = rng.integers(0, 6, n).astype(np.float64)  # many ties
        scores[rng.random(n) < 0.3] = -np.inf  # excluded items
        for c in (0, 1, 3, n // 2, n, n + 5):
            assert best(scores, c).tolist() == best_reference(scores, c).tolist(), (n, c)
    x = rng.standard_normal(9742).astype(np.float32)
    assert best(x, 40).tolist() == best_reference(x, 40).tolist()


def test_add_z_rows_equals_the_plain_weighted_sum_of_standardised_rows():
    from interestrec.recommend.zscore import add_z_rows, z_rows

    rng = np.random.default_rng(3)
    parts = [rng.normal(0.3, 0.1, (4, 500)).astype(np.float32), rng.random((4, 500)),  # float32 and float64 terms
             rng.normal(size=(4, 500)).astype(np.float32)]
    parts[1][2] = 0.7  # a constant row standardises to zeros
    weights = [0.5, 0.25, 1.0]
    total = None
    for w, x in zip(weights, parts):
        total = add_z_rows(total, x, w)
    expected = sum(w * z_rows(x) for w, x in zip(weights, parts))
    assert total.dtype == np.float32 and total.shape == (4, 500)
    np.testing.assert_allclose(total, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(add_z_rows(None, parts[1][2:3], 2.0), 0.0)
    assert (np.argsort(-total, 1, kind="stable")[:, :20] == np.argsort(-expected, 1, kind="stable")[:, :20]).mean() > 0.95


def test_diversity_spreads_over_interests(service):
    from interestrec.recommend.topk import diversify

    m = service.model
    u = next(u for u in range(len(service.user_ids)) if len(m.user_interests[u]) >= 3)
    uid = int(service.user_ids[u])
    plain = service.recommend(uid, k=8)["items"]
    rr = service.recommend(uid, k=8, diversity="round_robin")["items"]
    mmr = service.recommend(uid, k=8, diversity="mmr")["items"]
    n_int = len({i["explanation"]["interest"] for i in plain})
    assert len({i["explanation"]["interest"] for i in rr}) >= max(n_int, min(3, len(m.user_interests[u])))

    def ils(items):
        v = m.item_vecs[np.searchsorted(m.item_ids, [i["item_id"] for i in items])]
        s = v @ v.T
        return (s.sum() - np.trace(s)) / (len(v) * (len(v) - 1))

    assert ils(mmr) <= ils(plain) + 1e-9
    assert plain[0]["item_id"] == mmr[0]["item_id"]  # MMR starts from the most relevant item
    with pytest.raises(ValueError, match="unknown diversity mode"):
        diversify(np.arange(3), np.zeros(5), m.item_vecs[:5], m.user_interests[u], 2, "zigzag")


def test_cold_history_lands_in_the_topic_cluster(service):
    m = service.model
    topic_items = [int(i) for i in m.item_ids[2::4][:5]]  # topic 2 (Horror)
    body = service.recommend_history([{"item_id": i, "event": "rate"} for i in topic_items], k=10)
    assert body["user_id"] is None and not set(topic_items) & {i["item_id"] for i in body["items"]}
    assert sum(i["title"].startswith("Horror") for i in body["items"]) >= 8
    assert service.profiles[body["cluster"]]["description"].startswith("Horror")


def test_seq_term_reads_histories_newest_first(service):
    """Known users, fresh events and cold histories all feed the seq term in time order."""
    from interestrec.recommend.itemitem import item_item_scores

    m = service.model
    assert m.item_table is not None and m.item_table.nnz > 0  # fitted at load for an unpublished output
    u = 3
    _, _, _, seq = m.components(np.array([u]))
    np.testing.assert_allclose(seq[0], item_item_scores(m.item_table, [m.history[u]], m.seq_half_life)[0], atol=1e-6)
    # a cold history: the same items with their timestamps reversed give the reversed order's scores
    items = [int(i) for i in m.item_ids[[1, 5, 9, 13]]]
    idx = service.item_indices(items)
    fwd = [{"item_id": i, "timestamp": 1_700_000_000 + 10 * n} for n, i in enumerate(items)]
    rev = [{"item_id": i, "timestamp": 1_700_000_000 - 10 * n} for n, i in enumerate(items)]
    s_fwd = item_item_scores(m.item_table, [idx], m.seq_half_life)[0]
    s_rev = item_item_scores(m.item_table, [idx[::-1]], m.seq_half_life)[0]
    assert not np.allclose(s_fwd, s_rev)
    top = lambda body: [i["item_id"] for i in body["items"]]  # noqa: E731
    w = dataclasses.replace(m, params=m.params.without("llm", "graph", "pop"))
    service.model, saved = w, m
    try:
        a, b = service.recommend_history(fwd, k=5), service.recommend_history(rev, k=5)
    finally:
        service.model = saved
    seen = set(idx)
    expect = lambda s: [int(m.item_ids[j]) for j in np.lexsort((np.arange(len(s)), -s)) if j not in seen][:5]  # noqa: E731
    assert top(a) == expect(s_fwd) and top(b) == expect(s_rev)


def test_unknown_ids_and_bad_k_are_named(service):
    from interestrec.recommend.service import NotFound

    with pytest.raises(NotFound, match="unknown user 5"):
        service.recommend(5)
    with pytest.raises(NotFound, match=r"unknown item\(s\) \[7\]"):
        service.recommend_history([{"item_id": 10}, {"item_id": 7}])
    with pytest.raises(ValueError, match=r"k must be in \[1, 1000\]"):
        service.recommend(int(service.user_ids[0]), k=0)
    with pytest.raises(NotFound, match="unknown cluster 9"):
        service.cluster(9)
    with pytest.raises(RuntimeError, match="dimension 5 differs"):
        service.recommend_history([{"item_id": 10}], text_vector=np.ones(5))


def test_clusters_and_interests(service):
    cl = service.clusters()["clusters"]
    assert len(cl) == 4 and sum(c["size"] for c in cl) == 48
    for c in cl:
        one = service.cluster(c["id"])
        topic = one["description"].split(",")[0]
        assert one["lineage_description"] == f"{topic} lovers" and [w["window"] for w in one["lineage"]] == [0, 1]
        assert one["lineage"][1]["label"] == "survived" and one["lineage"][1]["parents"] == [one["lineage_id"]]
        assert sum(i["title"].startswith(topic) for i in one["top_items"]) >= 8
    body = service.interests(int(service.user_ids[0]))
    assert 1 <= len(body["interests"]) <= 4 and body["history_size"] > 10


# ----------------------------------------------------------------------------------------------- evaluation row
def test_fused_row_tunes_and_beats_popularity(art_dir):
    import interestrec.evaluate.models  # noqa: F401  (registers the baselines)
    import interestrec.evaluate.models.fused  # noqa: F401
    from interestrec.data import load_ingest
    from interestrec.evaluate.base import REGISTRY
    from interestrec.evaluate.data import build_interactions
    from interestrec.evaluate.protocol import tune_and_evaluate

    assert REGISTRY["fused"].baseline is False
    ing = load_ingest(str(art_dir / "ingest"))
    item_ids = np.unique(ing.items["item_id"].to_numpy())
    valid = build_interactions(ing.events, item_ids, "valid", str(art_dir))
    test = build_interactions(ing.events, item_ids, "test", str(art_dir))
    fused = tune_and_evaluate(REGISTRY["fused"], valid, test, log=lambda *_: None)
    pop = tune_and_evaluate(REGISTRY["mostpop"], valid, test, log=lambda *_: None)
    assert len(fused["tuning"]) == len(REGISTRY["fused"].grid)
    assert fused["ndcg@10"] > pop["ndcg@10"]
    with pytest.raises(FileNotFoundError, match="artifacts"):
        REGISTRY["fused"]().fit(build_interactions(ing.events, item_ids, "valid", None))


# ----------------------------------------------------------------------------------------------- state + log
def test_fresh_events_move_interests_and_cluster(service):
    from interestrec.recommend.state import UserState, apply_events

    m = service.model
    u = next(u for u in range(len(service.user_ids)) if m.user_cluster[u] != 1)
    uid = int(service.user_ids[u])
    items = [int(i) for i in m.item_ids[1::4][:6]]  # topic 1
    st = service.apply_events(uid, [{"item_id": i, "event": "purchase", "timestamp": 1_700_000_000} for i in items], None)
    assert st.cluster == 1 and st.history == items and st.events == 6
    assert len(st.interests) == len(m.user_interests[u]) + 1
    assert np.allclose(np.linalg.norm(st.interests, axis=1), 1, atol=1e-5)
    before = service.recommend(uid, k=10)["items"]
    after = service.recommend(uid, k=10, state=st)
    assert after["cluster"] == 1 and not set(items) & {i["item_id"] for i in after["items"]}
    assert sum(i["title"].startswith("Romance") for i in after["items"]) > sum(i["title"].startswith("Romance") for i in before)
    with pytest.raises(ValueError, match="decay_factor"):
        apply_events(UserState(st.interests, 0), m.item_vecs[:1], [1], ["view"], [0], service.centroids, decay_factor=0)
    capped = st
    for _ in range(12):
        capped = service.apply_events(uid, [{"item_id": items[0]}], capped)
    assert len(capped.interests) == 8


def test_cached_similarity_rows_give_the_plain_item_level_scores():
    from interestrec.recommend.llm_term import SimilarityRows, item_level_reference, item_level_scores

    rng = np.random.default_rng(3)
    vecs = rng.normal(size=(300, 16)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    hists = [rng.integers(0, 300, int(rng.integers(0, 30))) for _ in range(40)]
    cache = SimilarityRows(vecs, capacity=50)  # smaller than the items asked for: rows are evicted and recomputed
    for mode in ("item_max", "item_sum"):
        plain = item_level_scores(vecs, hists, mode, last=20, half_life=5.0, chunk=16)  # chunks of short and empty
        for _ in range(2):
            cached = item_level_scores(vecs, hists, mode, last=20, half_life=5.0, rows=cache)
            np.testing.assert_allclose(cached, plain, rtol=1e-5, atol=1e-6)
        for b in range(len(hists)):  # every history against the plain per-pair form (padding, empty ones)
            for j in (0, 123, 299):
                ref = item_level_reference(vecs, hists[b], j, mode, 20, 5.0)
                assert plain[b, j] == pytest.approx(ref, abs=1e-5) and cached[b, j] == pytest.approx(ref, abs=1e-5)
    assert cache.hits > 0 and cache.misses > 0 and len(cache._rows) <= 50
    assert SimilarityRows.for_budget(vecs, 1.0).capacity == 2**20 // (4 * 300)  # rows of n_items float32 in 1 MiB
    np.testing.assert_allclose(cache.rows(np.array([5, 5, 9])), vecs[[5, 5, 9]] @ vecs.T, rtol=1e-5, atol=1e-6)
    warm = SimilarityRows(vecs, capacity=50)
    assert warm.warm(np.arange(299, 219, -1), chunk=16) == 50 and warm.misses == 50  # the 50 most wanted, once each
    np.testing.assert_allclose(warm.rows(np.array([299, 250])), vecs[[299, 250]] @ vecs.T, rtol=1e-5, atol=1e-6)
    assert warm.misses == 50 and warm.hits == 2  # served from the warmed rows
    assert warm.rows(np.array([249])).shape == (1, 300) and warm.misses == 51  # past the 50: computed now


def test_recent_items_lists_what_the_llm_term_will_ask_for_most_shared_first():
    from interestrec.recommend.llm_term import recent_items

    hist = [np.array([1, 2, 3, 4]), np.array([9, 4]), np.array([], np.int64), np.array([4, 3])]
    assert recent_items(hist, last=2).tolist() == [4, 3, 9]  # item 1 and 2 are past each user's last 2
    assert recent_items([], last=2).tolist() == []
