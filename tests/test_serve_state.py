"""Serving's plain-Python parts: fresh state folded from stored events, the shared event weights, version
pinning, the encoder dimension check, the serve config's validation, typed errors of the service.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fixtures.artifacts import make_artifacts


@pytest.fixture(scope="module")
def out(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("state") / "out"
    make_artifacts(out, version=1, d=32)
    (out / "publish" / "LATEST").write_text("v1")
    return out


@pytest.fixture(scope="module")
def service(out):
    from interestrec.recommend.service import RecommenderService

    return RecommenderService(str(out))


def test_state_from_stored_events_equals_applying_batches_in_sequence(service, tmp_path):
    from interestrec.serving.stores import open_store

    store = open_store(f"sqlite://{tmp_path}/ev.db")
    uid = int(service.user_ids[0])
    items = [int(i) for i in service.item_ids[1::7][:5]]
    b1 = [{"item_id": items[0], "timestamp": 1_700_000_000, "event": "click", "value": None, "text": None},
          {"item_id": items[1], "timestamp": 0, "event": "rate", "value": 2.0, "text": None}]
    b2 = [{"item_id": items[2], "timestamp": 1_600_000_000, "event": "purchase", "value": None, "text": None}]
    store.append(uid, b1, "a")
    store.append(uid, b2, "b")
    state = service.state_from_events(uid, store.fresh(uid, 100))
    step = service.apply_events(uid, b2, service.apply_events(uid, b1, None))
    assert np.allclose(state.interests, step.interests) and state.history == step.history == items[:3]
    assert state.events == 3 and service.state_from_events(uid, []) is None
    bounded = service.state_from_events(uid, store.fresh(uid, 1))  # only the newest event folds in
    assert bounded.history == [items[2]]


def _unit(rng, *shape):
    v = rng.normal(size=shape).astype(np.float32)
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def test_fresh_events_on_a_live_item_fold_its_vector_into_the_interests(out, tmp_path):
    from interestrec.encode.pooling import decay, event_weights
    from interestrec.recommend.live import LiveId, LiveItems
    from interestrec.recommend.service import RecommenderService
    from interestrec.recommend.state import nearest_cluster
    from interestrec.serving.idtypes import IdCodec
    from interestrec.serving.stores import open_store

    svc, plain = RecommenderService(str(out)), RecommenderService(str(out))  # plain: the item not served there
    vec = _unit(np.random.default_rng(2), 32)
    svc.set_live(LiveItems((9001,), ("Orbit",), vec[None]))
    u = 3
    uid, cat = int(svc.user_ids[u]), int(svc.item_ids[5])
    store = open_store(f"sqlite://{tmp_path}/ev.db")
    t0 = 1_700_000_000
    store.append(uid, [{"item_id": cat, "timestamp": t0, "event": "view"},
                       {"item_id": 9001, "timestamp": t0 + 86400, "event": "rate", "value": 5.0},
                       {"item_id": 424242, "timestamp": t0, "event": "view"}], "a")  # neither: skipped
    store.append(uid, [{"item_id": 9001, "timestamp": t0 + 2 * 86400, "event": "purchase"}], "b")
    codec = IdCodec(svc.arts.user_map, svc.arts.item_map)
    events = codec.event_indices(store.fresh(uid, 100), {9001}.__contains__)
    state = svc.state_from_events(uid, events)

    def unit_rows(x):
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    # the plain reference: per batch, old interests x decay_factor and the batch's weighted mean vector
    w = event_weights(np.array(["view", "rate"], dtype=object), np.array([np.nan, 5.0])) * \
        decay(np.array([t0, t0 + 86400.0]), t0 + 86400.0, svc.half_life)
    first = w[0] * svc.model.item_vecs[5] + w[1] * vec
    its = unit_rows(np.vstack([svc.model.user_interests[u] * 0.7, first / np.linalg.norm(first)]))
    its = unit_rows(np.vstack([its * 0.7, vec]))
    assert np.allclose(state.interests, its, atol=1e-5) and state.cluster == nearest_cluster(svc.centroids, vec)
    assert state.history == [cat, LiveId(9001), LiveId(9001)] and state.events == 3
    skipped = plain.state_from_events(uid, events)  # a replica without the live item yet: only the catalogue's
    assert skipped.history == [cat] and skipped.events == 1

    # the live item is now one the user has seen: left out with exclude_seen, there without; the seq term
    # (no row for it) and the explanations take the state as it is
    everything = len(svc.item_ids) + 1
    seen = [i["item_id"] for i in svc.recommend(uid, k=everything, state=state)["items"]]
    shown = [i["item_id"] for i in svc.recommend(uid, k=everything, exclude_seen=False, state=state)["items"]]
    assert LiveId(9001) not in seen and cat not in seen and LiveId(9001) in shown
    excluded = svc.recommend(uid, k=everything, exclude_seen=False, state=state, exclude_items=[LiveId(9001), cat])
    assert {LiveId(9001), cat}.isdisjoint(i["item_id"] for i in excluded["items"])
    assert len(excluded["items"]) == everything - 2
    assert svc.interests(uid, state)["history_size"] == len(svc.model.history[u]) + 3


def test_joint_positions_place_live_items_after_the_catalogue(service):
    from interestrec.recommend.errors import NotFound
    from interestrec.recommend.live import LiveId, LiveItems, LiveScorer, joint_positions
    from interestrec.serving.idtypes import MISSING

    live = LiveScorer(service.model, LiveItems((9001, "s-1"), ("a", "b"), _unit(np.random.default_rng(0), 2, 32)))
    n = len(service.item_ids)
    items = [int(service.item_ids[3]), LiveId("s-1"), 5, LiveId(9002), LiveId(9001), MISSING, LiveId(1)]
    where = {int(i): p for p, i in enumerate(service.item_ids)} | {LiveId(9001): n, LiveId("s-1"): n + 1}
    assert joint_positions(service.item_ids, live, items).tolist() == [where.get(i, -1) for i in items]
    assert joint_positions(service.item_ids, None, items).tolist() == [3, -1, -1, -1, -1, -1, -1]
    with pytest.raises(NotFound, match=r"\[5, 9002"):
        joint_positions(service.item_ids, live, items, strict=True)


def test_fresh_events_weigh_like_the_batch_pipeline():
    from interestrec.encode.pooling import decay, event_weights
    from interestrec.recommend.state import events_vector

    rng = np.random.default_rng(0)
    vecs = rng.normal(size=(4, 8)).astype(np.float32)
    kinds, ts, vals = ["view", "rate", "purchase", "rate"], np.array([0.0, 86400.0, 2e5, 3e5]), [None, 5.0, None, 1.0]
    w = event_weights(np.array(kinds, dtype=object), np.array([np.nan, 5.0, np.nan, 1.0])) * decay(ts, ts.max(), 180.0)
    want = (w[:, None] * vecs).sum(0)
    assert np.allclose(events_vector(vecs, kinds, ts, 180.0, vals), want / np.linalg.norm(want), atol=1e-6)
    assert w[3] < w[1]  # a 1-star rating counts less than a 5-star one, as in batch encoding


def test_version_is_pinned_once_and_resolved_to_its_directory(out):
    from interestrec.serving.versions import pin_version, resolve_pinned

    pinned = pin_version(str(out))
    assert pinned == {"artifacts": str(out), "version": "1"}
    v2 = out / "publish" / "v2"
    v2.mkdir()
    (v2 / "manifest.json").write_text(json.dumps({"version": 2}))
    (out / "publish" / "LATEST").write_text("v2")  # a newer LATEST does not move the pinned config
    assert resolve_pinned(pinned) == (str(out / "publish" / "v1"), "1")
    assert resolve_pinned(pin_version(str(out)))[1] == "2"
    assert pin_version(str(out / "publish" / "v1")) == {"artifacts": str(out / "publish" / "v1"), "version": "1"}
    with pytest.raises(ValueError, match="pinned version"):
        resolve_pinned({"artifacts": str(out)})
    with pytest.raises(FileNotFoundError, match="version 7"):
        resolve_pinned({"artifacts": str(out), "version": "7"})
    with pytest.raises(ValueError, match="holds version 1"):
        pin_version(str(out / "publish" / "v1"), 3)
    (out / "publish" / "LATEST").write_text("v1")


def test_encoder_dimension_mismatch_is_a_clear_start_up_error(out):
    from interestrec.serving.versions import check_encoder_dim, item_dim

    path = str(out / "publish" / "v1")
    assert item_dim(path) == 32
    check_encoder_dim(path, "1", 32)
    with pytest.raises(RuntimeError, match="dimension 384 differs from version 1's item vectors \\(32\\)"):
        check_encoder_dim(path, "1", 384)


def test_serve_config_validates_and_parses_cli_strings():
    from interestrec.encode.config import EncodeConfig
    from interestrec.recommend.config import ServeConfig

    cfg = ServeConfig.from_args({"max_batch_size": "8", "batch_wait_timeout_s": "0.001", "token": "x", "read_token": None})
    assert (cfg.max_batch_size, cfg.batch_wait_timeout_s, cfg.token, cfg.read_token) == (8, 0.001, "x", None)
    assert cfg.max_tokens == EncodeConfig.max_tokens  # one token budget for batch and serving
    with pytest.raises(ValueError, match="unknown serve settings"):
        ServeConfig.from_args({"replicas": 2})
    with pytest.raises(ValueError, match="max_fresh_events"):
        ServeConfig(max_fresh_events=0)
    with pytest.raises(ValueError, match="max_batch_size"):
        ServeConfig(max_batch_size=100, max_ongoing_requests=10)


def test_service_errors_are_typed_and_exclusions_apply(service):
    from interestrec.recommend.service import InvalidRequest, NotFound

    uid = int(service.user_ids[0])
    with pytest.raises(NotFound, match="unknown user"):
        service.recommend(12345678)
    with pytest.raises(InvalidRequest, match="k must be"):
        service.recommend(uid, k=0)
    with pytest.raises(InvalidRequest, match="diversity"):
        service.recommend(uid, diversity="zigzag")
    top = [i["item_id"] for i in service.recommend(uid, k=5)["items"]]
    ex = [i["item_id"] for i in service.recommend(uid, k=5, exclude_items=top[:2] + [999_999_999])["items"]]
    assert not set(top[:2]) & set(ex) and ex[:3] == top[2:]
    hidden = service.recommend(uid, k=3, explain_history=False)["items"]
    assert all(i["explanation"]["nearest_history_item"] is None for i in hidden)
    many = service.recommend_many([uid, int(service.user_ids[1])], k=4)
    assert [m["items"] for m in many] == [service.recommend(u, k=4)["items"] for u in (uid, int(service.user_ids[1]))]


def test_similar_users_share_the_cluster_and_offer_unseen_items(service):
    uid = int(service.user_ids[3])
    body = service.similar(uid, n=4, k=6)
    u = service.user_index(uid)
    cl = int(service.model.user_cluster[u])
    assert body["cluster"] == cl and 1 <= len(body["users"]) <= 4
    assert all(int(service.model.user_cluster[service.user_index(x["user_id"])]) == cl for x in body["users"])
    seen = {int(service.item_ids[i]) for i in service.model.history[u]}
    assert body["items"] and not seen & {i["item_id"] for i in body["items"]}
    peers_items = {int(service.item_ids[i]) for x in body["users"] for i in service.model.history[service.user_index(x["user_id"])]}
    assert {i["item_id"] for i in body["items"]} <= peers_items


def test_recommender_is_unhealthy_until_its_pinned_version_is_loaded(out, tmp_path):
    from interestrec.recommend.config import ServeConfig
    from interestrec.serving.app import Recommender

    cls = next(c for c in Recommender.func_or_class.__mro__ if "check_health" in vars(c))  # the class under the ingress
    rec = cls(ServeConfig(store=f"sqlite://{tmp_path}/ev.db", token="w", read_token="r"))
    with pytest.raises(RuntimeError, match="not loaded"):
        rec.check_health()
    with pytest.raises(ValueError, match="pinned version"):
        rec.reconfigure({"artifacts": str(out)})
    rec.reconfigure({"artifacts": str(out), "version": "1"})
    rec.check_health()
    assert rec.service.version == "1"
