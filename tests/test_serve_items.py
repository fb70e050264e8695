"""The live catalogue: items and their vectors in both stores (idempotent, latest write wins, kept across a
restart, exported), live items scored exactly as the fused model scores a cold item, and over real HTTP a new
item recommended right after ``POST /items`` to a user whose interests match its text, on every replica,
after a restart too.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import httpx
import numpy as np
import pyarrow as pa
import pytest

from fixtures.artifacts import TOPICS, make_artifacts
from fixtures.redis_server import RedisServer

os.environ.setdefault("RAY_SERVE_PROXY_READY_CHECK_TIMEOUT_S", "60")
TOKEN, READ = "w-items", "r-items"
AUTH, RAUTH = {"Authorization": f"Bearer {TOKEN}"}, {"Authorization": f"Bearer {READ}"}
APP, PREFIX = "items", "/items-app"


def _item(i: int, title: str = "", d: int = 4) -> dict:
    return {"item_id": i, "title": title or f"film {i}", "genres": ["Space"], "description": None,
            "vector": [float(i), 0.5] + [0.0] * (d - 2)}


@pytest.fixture(params=["sqlite", "redis"])
def store_kind(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite://{tmp_path}/ev.db", None
    else:
        srv = RedisServer(tmp_path / "redis").start()
        yield srv.url, srv
        srv.stop()


def test_items_store_contract(store_kind, tmp_path):
    import pyarrow.parquet as pq

    from interestrec.serving.store import KeyConflict, export_items_parquet
    from interestrec.serving.stores import open_store

    url, srv = store_kind
    s = open_store(url)
    first = s.put_items([_item(5001), _item(5002)], "a")
    assert (first.n, first.duplicate) == (2, False)
    again = s.put_items([_item(5001), _item(5002)], "a")
    assert again.duplicate and again.first_seq == first.first_seq
    with pytest.raises(KeyConflict):
        s.put_items([_item(5001, "other title")], "a")
    s.put_items([_item(5001, "renamed")], "b")  # an update: the latest write wins
    assert [(i.item_id, i.title) for i in s.items_since(0)] == [(5002, "film 5002"), (5001, "renamed")]
    assert [i.item_id for i in s.items_since(first.first_seq + 1)] == [5001]  # only what changed since
    got = s.item(5001)
    assert got.genres == ("Space",) and np.allclose(got.vector[:2], [5001.0, 0.5]) and s.item(77) is None
    s.put_items([{**_item(0), "item_id": "s-7"}], "c")
    assert s.item("s-7").title == "film 0" and s.item(7) is None  # string ids kept as strings
    if srv is not None:
        srv.kill()  # kill -9, then the same AOF
        srv.start()
    reopened = open_store(url)
    assert [i.title for i in reopened.items_since(0)] == ["film 5002", "renamed", "film 0"]
    n = export_items_parquet(reopened, str(tmp_path / "export" / "items.parquet"))
    t = pq.read_table(tmp_path / "export" / "items.parquet")
    assert n == 3 and t.column_names[:3] == ["item_id", "title", "genres"] and t.num_rows == 3
    assert t.schema.field("vector").type == pa.list_(pa.float32())


def test_live_items_are_scored_as_cold_items(tmp_path):
    from interestrec.recommend.fused import COMPONENTS
    from interestrec.recommend.live import LiveItems, LiveScorer
    from interestrec.recommend.service import RecommenderService

    make_artifacts(tmp_path / "out", d=32)
    svc = RecommenderService(str(tmp_path / "out"))
    m = svc.model
    rng = np.random.default_rng(1)
    vecs = rng.normal(size=(3, 32)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    live = LiveScorer(m, LiveItems((9001, 9002, 9003), ("a", "b", "c"), vecs))
    users = np.array([0, 5, 9])
    both = live.scores(m, users)
    assert np.allclose(both[:, : len(svc.item_ids)], m.score(users), atol=1e-5)  # the catalogue unchanged
    parts = m.components(users)
    for b, u in enumerate(users):  # each live item: its llm term, zero graph / pop / seq, on the catalogue's scale
        want = np.zeros(3)
        for name, w, part in zip(COMPONENTS, m.weights, parts):
            if part is None or not w:
                continue
            raw = (m.user_interests[u] @ vecs.T).max(0) if name == "llm" else np.zeros(3)
            want += w * (raw - part[b].mean()) / part[b].std()
        assert np.allclose(both[b, len(svc.item_ids):], want, atol=1e-4)
    svc.set_live(LiveItems((9001,), ("a",), m.user_interests[0][:1]))  # an item right at user 0's interest
    top = svc.recommend(int(svc.user_ids[0]), k=240)["items"]
    assert any(type(i["item_id"]).__name__ == "LiveId" for i in top)


def test_a_live_item_in_a_history_votes_in_the_item_level_llm_term(tmp_path):
    import dataclasses

    from interestrec.recommend.fused import COMPONENTS
    from interestrec.recommend.live import LiveItems, LiveScorer
    from interestrec.recommend.llm_term import item_level_reference
    from interestrec.recommend.service import RecommenderService

    make_artifacts(tmp_path / "out", d=32)
    svc = RecommenderService(str(tmp_path / "out"))
    m = dataclasses.replace(svc.model, params=dataclasses.replace(svc.model.params, llm_mode="item_max", llm_last=3))
    vecs = np.random.default_rng(3).normal(size=(3, 32)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    live = LiveScorer(m, LiveItems((9001, 9002, 9003), ("a", "b", "c"), vecs))
    n = len(svc.item_ids)
    joint = np.array([2, n + 1, 7, n])  # oldest first: two live items among the last three
    users, its, clusters = np.array([0]), [m.user_interests[0]], np.array([0])
    got = live.scores(m, users, its, clusters, [joint[joint < n]], joint=[joint])[0]
    # the plain reference: the item-level term over the joint vectors, the other terms as for a cold item,
    # each standardised with the catalogue's own mean and deviation
    llm = np.array([item_level_reference(live.view.item_vecs, joint, j, "item_max", 3, m.params.llm_half_life)
                    for j in range(n + 3)])
    want = np.zeros(n + 3)
    for name, w, part in zip(COMPONENTS, m.weights, m.components(users, its, clusters, [joint[joint < n]])):
        if part is None or not w:
            continue
        row = llm if name == "llm" else np.r_[part[0], np.zeros(3)]
        want += w * (row - row[:n].mean()) / row[:n].std()
    assert np.allclose(got, want, atol=1e-4)
    without = live.scores(m, users, its, clusters, [joint[joint < n]])[0]  # the live history items left out
    assert not np.allclose(without, want, atol=1e-2)


def test_a_cold_history_may_name_a_live_item(tmp_path):
    from interestrec.recommend.errors import NotFound
    from interestrec.recommend.live import LiveId, LiveItems
    from interestrec.recommend.service import RecommenderService

    make_artifacts(tmp_path / "out", d=32)
    svc = RecommenderService(str(tmp_path / "out"))
    v = svc.model.user_interests[4][0]
    with pytest.raises(NotFound, match="9001"):  # not served (yet)
        svc.recommend_history([{"item_id": LiveId(9001)}], k=5)
    svc.set_live(LiveItems((9001,), ("Orbit",), v[None]))
    got = svc.recommend_history([{"item_id": LiveId(9001), "timestamp": 1_700_000_000}], k=20)
    # its vector is the cold user's vector: as the same vector sent as text, less the history item itself
    text = svc.recommend_history([], k=21, text_vector=v)
    assert got["cluster"] == text["cluster"]
    assert [(i["item_id"], i["score"]) for i in got["items"]] == \
        [(i["item_id"], i["score"]) for i in text["items"] if i["item_id"] != LiveId(9001)][:20]
    assert LiveId(9001) in [i["item_id"] for i in text["items"]]
    assert got["items"][0]["explanation"]["nearest_history_item"] == {"item_id": LiveId(9001), "title": "Orbit"}
    left = svc.recommend_history([], k=21, text_vector=v, exclude_items=[LiveId(9001)])
    assert LiveId(9001) not in [i["item_id"] for i in left["items"]]


def test_a_replica_finds_an_item_another_replica_just_added(tmp_path):
    import asyncio

    from interestrec.recommend.live import LiveId
    from interestrec.recommend.service import RecommenderService
    from interestrec.serving.idtypes import IdCodec, UnknownId
    from interestrec.serving.items import ItemRoutes
    from interestrec.serving.stores import open_store

    class Replica(ItemRoutes):  # what the Recommender deployment gives its live-catalogue routes
        def __init__(self, store, service):
            self.store, self.service = store, service
            self.codecs = {service.version: IdCodec(service.arts.user_map, service.arts.item_map).prepared()}

    make_artifacts(tmp_path / "out", d=32)
    url = f"sqlite://{tmp_path}/ev.db"
    here = Replica(open_store(url), RecommenderService(str(tmp_path / "out")))
    codec = here.codecs[here.service.version]
    open_store(url).put_items([_item(9001, d=32)], "elsewhere")  # another replica's POST /items
    assert not here._is_live(9001)  # this replica has not looked since
    assert asyncio.run(here._item_refs(codec, [10, "9001"])) == [10, LiveId(9001)]
    assert here._is_live(9001) and here.service.live.items.ids == (9001,)  # and it serves it now
    with pytest.raises(UnknownId, match="unknown item 9002"):
        asyncio.run(here._item_refs(codec, [10, 9002]))


# ---------------------------------------------------------------------------------------------- over HTTP
TOPIC_TEXT = {"Space": "astronauts, rockets and a voyage to distant planets", "Romance": "two lovers, a wedding and a kiss",
              "Horror": "a haunted house, ghosts and a screaming victim", "Cooking": "a chef, recipes and a kitchen feast"}


DESCRIPTION_WORDS = 8  # the published encode.item_description_words: descriptions cut to 8 words


@pytest.fixture(scope="module")
def out(tmp_path_factory) -> Path:
    """The planted-topic artifacts with item vectors from the packaged encoder (each item's text names its
    topic), so user interests and item text live in one space, published with the seq table's text fill on
    (``cold_alpha``, as the evaluation's cold-item protocol tunes it)."""
    import pyarrow.parquet as pq

    from interestrec import artifacts
    from interestrec.encode.encoder import TextEncoder
    from interestrec.encode.text import item_text

    out = tmp_path_factory.mktemp("items") / "out"
    root = make_artifacts(out, version=1, d=384, graph=False)
    items = pq.read_table(root / "ingest" / "items.parquet").to_pylist()
    texts = [item_text(i["title"], genres=i["genres"], description=TOPIC_TEXT[i["genres"][0]],
                       description_words=DESCRIPTION_WORDS) for i in items]
    vecs = TextEncoder(None, device="cpu").encode(texts).astype(np.float32)
    artifacts.write_parquet(root / "encode" / "items.parquet", pa.table(
        {"item_id": pa.array([i["item_id"] for i in items], pa.int64()), "vector": artifacts.vectors_to_arrow(vecs)}))
    users = pq.read_table(root / "encode" / "users.parquet")  # interests recomputed from the new vectors
    empty = pa.array([[] for _ in range(users.num_rows)], users.schema.field("interests").type)
    artifacts.write_parquet(root / "encode" / "users.parquet",
                            users.set_column(users.column_names.index("interests"), "interests", empty))
    topic = {t: np.mean([v for v, i in zip(vecs, items) if i["genres"][0] == t], 0) for t in TOPICS}
    artifacts.write_npy(root / "cluster" / "centroids.npy",
                        np.stack([topic[t] / np.linalg.norm(topic[t]) for t in TOPICS]).astype(np.float32))
    artifacts.write_json(root / "manifest.json",  # item texts carry descriptions: POST /items must encode them too
                         {"version": 1, "metrics": {"fused": {"ndcg@10": 0.5, "params": {"cold_alpha": 1.0}}},
                          "config": {"encode": {"item_description_words": DESCRIPTION_WORDS}}})
    return out


def _deploy(out: Path, db: Path):
    from ray import serve

    from interestrec.serving.app import build_app

    serve.run(build_app({"artifacts": str(out), "store": f"sqlite://{db}", "token": TOKEN, "read_token": READ,
                         "recommender_replicas": 2, "recommender_cpus": 0.25}), name=APP, route_prefix=PREFIX)


@pytest.fixture(scope="module")
def server(out, ray_local, tmp_path_factory):
    from ray import serve
    from ray.serve.context import _get_global_client

    from fixtures.ports import free_port, wait_http

    serve.start(http_options={"host": "127.0.0.1", "port": free_port()})
    port = _get_global_client().http_config.port
    db = tmp_path_factory.mktemp("items-store") / "events.db"
    _deploy(out, db)
    wait_http(f"http://127.0.0.1:{port}{PREFIX}/healthz")
    with httpx.Client(base_url=f"http://127.0.0.1:{port}{PREFIX}", timeout=60, headers=RAUTH) as client:
        yield client, db
    serve.delete(APP)


NEW = {"item_id": 777001, "title": "Orbit of the Lost Fleet", "genres": ["Space"],
       "description": "astronauts, rockets and a voyage to distant planets aboard a starship"}


def _until_every_replica(c: httpx.Client, body: dict, want, timeout: float = 20.0, every: bool = False) -> dict:
    """Ask until two replicas have both answered with ``want(answer)`` true (``every``: it must hold for every
    answer, not just eventually); the answers by replica."""
    seen, t_end = {}, time.time() + timeout
    while time.time() < t_end and len(seen) < 2:
        r = c.post("/recommend", json=body)
        assert r.status_code == 200, r.text
        ok = want(r.json())
        assert ok or not every, r.json()
        if ok:
            seen[r.json()["replica"]] = r.json()
    assert len(seen) == 2, seen
    return seen


@pytest.mark.slow  # a Serve app with the encoder, started twice
def test_a_new_item_is_recommended_right_after_post_items(server, out, tmp_path_factory):
    from ray import serve

    from interestrec.serving.stores import open_store

    c, db = server
    space_user = 1004  # the fixture's user 4 likes Space only
    unauthorised = c.post("/items", json={"items": [NEW], "idempotency_key": "cat-1"})
    assert unauthorised.status_code == 401, unauthorised.text  # writes need the write token
    r = c.post("/items", json={"items": [NEW], "idempotency_key": "cat-1"}, headers=AUTH)
    assert r.status_code == 200 and r.json()["items"] == 1 and not r.json()["duplicate"], r.text
    t_posted = time.time()
    again = c.post("/items", json={"items": [NEW]}, headers={**AUTH, "Idempotency-Key": "cat-1"})
    assert again.status_code == 200 and again.json()["duplicate"]
    conflict = c.post("/items", json={"items": [{**NEW, "title": "other"}], "idempotency_key": "cat-1"}, headers=AUTH)
    assert conflict.status_code == 409
    catalogue_id = c.post("/items", json={"items": [{**NEW, "item_id": 10}], "idempotency_key": "cat-2"}, headers=AUTH)
    assert catalogue_id.status_code == 422 and "10" in catalogue_id.text  # a catalogue item's id

    def has_new(body):
        return NEW["item_id"] in [i["item_id"] for i in body["items"]]

    known = _until_every_replica(c, {"user_id": space_user, "k": 30}, has_new)
    assert time.time() - t_posted < 5  # every replica served it within its poll interval (and the test's own pace)
    for body in known.values():
        item = next(i for i in body["items"] if i["item_id"] == NEW["item_id"])
        assert item["title"] == NEW["title"] and item["explanation"]["interest_similarity"] > 0.3
    romance = c.post("/recommend", json={"user_id": 1001, "k": 30}).json()  # interests far from its text
    assert NEW["item_id"] not in [i["item_id"] for i in romance["items"]]
    # a cold user's text path serves it too (behind the warm Space items the one history item co-occurs with)
    cold = c.post("/recommend", json={"history": [{"item_id": 10}], "text": NEW["description"], "k": 100})
    ranked = [i["title"] for i in cold.json()["items"]]
    assert cold.status_code == 200 and NEW["title"] in ranked, cold.text
    got = c.get(f"/items/{NEW['item_id']}")
    assert got.status_code == 200 and got.json() == {**NEW, "live": True}
    assert c.get("/items/10").json()["live"] is False and c.get("/items/424242").status_code == 404
    assert c.get("/items/notanumber").status_code == 422
    serve.delete(APP)  # a restart: the item comes back from the store
    _deploy(out, db)
    _until_every_replica(c, {"user_id": space_user, "k": 30}, has_new)
    exported = open_store(f"sqlite://{db}").export_items()
    assert exported["item_id"].to_pylist() == [NEW["item_id"]] and exported["title"].to_pylist() == [NEW["title"]]
    # its vector is what the encode stage computes for the exported row: the same text, cut the published way
    from interestrec.encode.encoder import TextEncoder
    from interestrec.encode.text import item_text

    text = item_text(NEW["title"], genres=NEW["genres"], description=NEW["description"], description_words=DESCRIPTION_WORDS)
    assert text.endswith("voyage to distant planets …")  # cut: the description has 11 words
    stored = np.asarray(open_store(f"sqlite://{db}").item(NEW["item_id"]).vector, np.float32)
    np.testing.assert_allclose(stored, TextEncoder(None, device="cpu").encode([text])[0], atol=1e-5)


LIVE = {"item_id": 777002, "title": "Rings of the Outer Moons", "genres": ["Space"],
        "description": "astronauts and rockets on a voyage to distant planets past the rings of saturn"}


def _every_answer(c: httpx.Client, body: dict, check, timeout: float = 20.0) -> dict:
    """Ask until both replicas have answered; ``check`` holds for every answer. The answers by replica."""
    return _until_every_replica(c, body, check, timeout, every=True)


@pytest.mark.slow  # the Serve app of the module (started once for both HTTP tests)
def test_a_live_item_is_an_item_everywhere_right_after_post_items(server):
    c, _ = server
    space, romance = 1008, 1001  # the fixture's users 8 and 1 like only Space and only Romance

    def titles(body):
        return [i["title"] for i in body["items"]]

    def has_live(body):
        return LIVE["item_id"] in [i["item_id"] for i in body["items"]]

    before = c.post("/recommend", json={"user_id": romance, "k": 30}).json()
    r = c.post("/items", json={"items": [LIVE]}, headers={**AUTH, "Idempotency-Key": "live-everywhere"})
    assert r.status_code == 200, r.text
    # at once, on whichever replica answers: an event on it is stored like any event ...
    ev = c.post("/events", json={"user_id": romance, "events": [{"item_id": LIVE["item_id"], "event": "purchase"}]},
                headers={**AUTH, "Idempotency-Key": "live-ev-1"})
    assert ev.status_code == 200 and ev.json()["events"] == 1, ev.text
    unknown = c.post("/events", json={"user_id": romance, "events": [{"item_id": 424243}]},
                     headers={**AUTH, "Idempotency-Key": "live-ev-2"})
    assert unknown.status_code == 404 and "424243" in unknown.text  # neither catalogue nor live
    # ... and folded into the user's state on every replica: the Space item moves the Romance user's
    # interests (Space items come in), and it counts as a fresh event
    after = _every_answer(c, {"user_id": romance, "k": 30}, lambda b: not has_live(b) and b["fresh_events"] == 1)
    for body in after.values():
        assert sum(t.startswith("Space") for t in titles(body)) > sum(t.startswith("Space") for t in titles(before)) + 3
    interests = c.get(f"/users/{romance}/interests").json()
    assert interests["fresh_events"] == 1 and any(i["nearest_item"]["title"].startswith("Space")
                                                  for i in interests["interests"])

    # exclude_items names it: gone from an answer it is otherwise in
    _until_every_replica(c, {"user_id": space, "k": 30}, has_live)
    for body in _every_answer(c, {"user_id": space, "k": 30, "exclude_items": [str(LIVE["item_id"])]},
                              lambda b: not has_live(b)).values():
        assert len(body["items"]) == 30
    # once the user has acted on it, exclude_seen leaves it out (and only that)
    ev = c.post("/events", json={"user_id": space, "events": [{"item_id": LIVE["item_id"]}]},
                headers={**AUTH, "Idempotency-Key": "live-ev-3"})
    assert ev.status_code == 200, ev.text
    _every_answer(c, {"user_id": space, "k": 30}, lambda b: not has_live(b) and b["fresh_events"] == 1)
    _every_answer(c, {"user_id": space, "k": 60, "exclude_seen": False}, has_live)

    # a cold history naming it: its vector is the user's (Space items), the item itself left out
    for body in _every_answer(c, {"history": [{"item_id": LIVE["item_id"], "event": "rate", "value": 5}], "k": 10},
                              lambda b: not has_live(b)).values():
        assert sum(t.startswith("Space") for t in titles(body)) >= 8, titles(body)
    assert c.post("/recommend", json={"history": [{"item_id": 424243}]}).status_code == 404
