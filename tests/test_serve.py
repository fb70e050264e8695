"""The Serve app over HTTP on 127.0.0.1: endpoints, bad input, fresh events, shared durable state, replica
failure, hot reload. One app for the module (two recommender replicas), over artifacts built by
``test_recommend.make_artifacts`` and the packaged MiniLM encoder for cold-start text.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from test_recommend import make_artifacts

ROOT = Path(__file__).resolve().parents[1]
# On a loaded 2-core machine the HTTP proxy can take longer than Serve's default 5 s ready check, after
# which the controller kills it; set before the session's Ray starts so its processes inherit it.
os.environ.setdefault("RAY_SERVE_PROXY_READY_CHECK_TIMEOUT_S", "60")
TOKEN = "s3cret"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _replica_actors(ray, deployment: str) -> list[dict]:
    return [a for a in ray.util.list_named_actors(all_namespaces=True) if f"#{deployment}#" in a["name"]]


@pytest.fixture(scope="module")
def out(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("serve") / "out"
    make_artifacts(out, version=1, d=384)  # the packaged MiniLM's dimension (cold-start text)
    return out


@pytest.fixture(scope="module")
def server(ray_local, out):
    from ray import serve

    sys.path.insert(0, str(ROOT))
    from serving.app import build_app

    port = _free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    serve.run(build_app({"artifacts": str(out), "token": TOKEN, "recommender_replicas": 2}), name="interestrec",
              route_prefix="/")
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
        yield client
    serve.delete("interestrec")


@pytest.fixture(scope="module")
def users(out):
    import pyarrow.parquet as pq

    return sorted(set(pq.read_table(out / "publish" / "v1" / "ingest" / "events.parquet", columns=["user_id"])["user_id"].to_pylist()))


def test_health_version_and_clusters(server):
    assert server.get("/healthz").json() == {"status": "ok"}
    assert server.get("/version").json()["version"] == "1"  # publish/LATEST → v1
    clusters = server.get("/clusters").json()["clusters"]
    assert len(clusters) == 4 and sum(c["size"] for c in clusters) == 48
    one = server.get("/clusters/2").json()
    assert one["id"] == 2 and len(one["top_items"]) == 10 and one["description"]
    assert [w["window"] for w in one["lineage"]] == [0, 1] and one["lineage_description"].endswith("lovers")


def test_recommend_known_user_with_explanations(server, users):
    r = server.post("/recommend", json={"user_id": users[0], "k": 7})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["user_id"] == users[0] and body["version"] == "1"
    assert len(body["items"]) == 7 and [i["rank"] for i in body["items"]] == list(range(1, 8))
    assert all(i["explanation"]["nearest_history_item"]["title"] for i in body["items"])
    assert all(i["explanation"]["cluster"] == body["cluster"] for i in body["items"])
    scores = [i["score"] for i in body["items"]]
    assert scores == sorted(scores, reverse=True)
    for mode in (True, "round_robin", "mmr"):
        div = server.post("/recommend", json={"user_id": users[0], "k": 7, "diversity": mode})
        assert div.status_code == 200 and len(div.json()["items"]) == 7
    seen = server.post("/recommend", json={"user_id": users[0], "k": 240, "exclude_seen": False}).json()["items"]
    assert len(seen) == 240


def test_recommend_cold_history_and_text(server):
    hist = [{"item_id": 30, "event": "rate", "timestamp": 1_700_000_000}, {"item_id": 70, "event": "view"}]  # Horror items
    r = server.post("/recommend", json={"history": hist, "k": 5})
    assert r.status_code == 200, r.text
    items = r.json()["items"]
    assert len(items) == 5 and not {30, 70} & {i["item_id"] for i in items} and r.json()["user_id"] is None
    t = server.post("/recommend", json={"history": hist, "text": "a scary haunted house", "k": 5, "user_id": 77})
    assert t.status_code == 200, t.text
    assert t.json()["user_id"] == 77 and len(t.json()["items"]) == 5


def test_user_interests(server, users):
    body = server.get(f"/users/{users[1]}/interests").json()
    assert body["user_id"] == users[1] and 1 <= len(body["interests"]) <= 4
    assert all(i["nearest_item"]["title"] for i in body["interests"])


@pytest.mark.parametrize("payload,status,needle", [
    ({"user_id": "abc"}, 422, "user_id"),
    ({"user_id": 1000, "k": 0}, 422, "k"),
    ({"user_id": 1000, "k": 1001}, 422, "k"),
    ({"user_id": 1000, "k": "ten"}, 422, "k"),
    ({"user_id": 1000, "diversity": "zigzag"}, 422, "diversity"),
    ({"history": [{"item_id": "x"}]}, 422, "item_id"),
    ({"history": [{"item_id": 30, "event": "teleport"}]}, 422, "event"),
    ({"history": [{"item_id": 30}] * 1001}, 422, "history"),
    ({}, 422, "user_id or a non-empty history"),
    ({"user_id": 999999999}, 404, "unknown user 999999999"),
    ({"history": [{"item_id": 424242424}]}, 404, "unknown item"),
])
def test_bad_recommend_requests(server, payload, status, needle):
    r = server.post("/recommend", json=payload)
    assert r.status_code == status, r.text
    assert needle in r.text


def test_malformed_bodies_and_unknown_paths(server):
    r = server.post("/recommend", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 422
    big = b'{"user_id": 1000, "pad": "' + b" " * (1 << 20) + b'"}'
    assert server.post("/recommend", content=big, headers={"content-type": "application/json"}).status_code == 413

    def chunks():
        yield b'{"user_id": 1000, "pad": "'
        for _ in range(20):
            yield b" " * 65536
        yield b'"}'

    assert server.post("/recommend", content=chunks(), headers={"content-type": "application/json"}).status_code == 413
    assert server.get("/clusters/999").status_code == 404 and "unknown cluster 999" in server.get("/clusters/999").text
    assert server.get("/clusters/abc").status_code == 422
    assert server.get("/users/999999999/interests").status_code == 404


def test_events_need_the_token_and_change_recommendations(server, users, out):
    u = users[2]
    before = server.post("/recommend", json={"user_id": u, "k": 10}).json()["items"]
    ev = {"user_id": u, "events": [{"item_id": i["item_id"], "event": "purchase"} for i in before[-3:]]}
    assert server.post("/events", json=ev).status_code == 401
    assert server.post("/events", json=ev, headers={"Authorization": "Bearer nope"}).status_code == 401
    r = server.post("/events", json=ev, headers=AUTH)
    assert r.status_code == 200, r.text
    assert r.json()["events"] == 3
    after = server.post("/recommend", json={"user_id": u, "k": 10}).json()["items"]
    assert [i["item_id"] for i in after] != [i["item_id"] for i in before]
    assert not {i["item_id"] for i in before[-3:]} & {i["item_id"] for i in after}  # now seen → filtered
    logged = [json.loads(line) for f in sorted((out / "events").glob("*.jsonl")) for line in f.read_text().splitlines()]
    assert {(rec["user_id"], rec["item_id"]) for rec in logged} >= {(u, i["item_id"]) for i in before[-3:]}  # durable before the 200
    assert server.get(f"/users/{u}/interests").json()["fresh_events"] == 3
    bad_item = server.post("/events", json={"user_id": u, "events": [{"item_id": 424242424}]}, headers=AUTH)
    assert bad_item.status_code == 404 and "unknown item" in bad_item.text
    bad_user = server.post("/events", json={"user_id": 5, "events": [{"item_id": 30}]}, headers=AUTH)
    assert bad_user.status_code == 404 and "unknown user 5" in bad_user.text
    assert server.post("/events", json={"user_id": u, "events": []}, headers=AUTH).status_code == 422


def test_events_posted_once_are_seen_by_every_replica(server, users):
    u = users[4]
    assert server.post("/events", json={"user_id": u, "events": [{"item_id": 50, "event": "purchase"}]}, headers=AUTH).status_code == 200
    replicas, bodies = set(), []
    for _ in range(60):
        b = server.post("/recommend", json={"user_id": u, "k": 10}).json()
        replicas.add(b["replica"])
        bodies.append([i["item_id"] for i in b["items"]])
        if len(replicas) == 2 and len(bodies) >= 6:
            break
    assert len(replicas) == 2  # both recommender replicas answered …
    assert all(b == bodies[0] for b in bodies) and 50 not in bodies[0]  # … with the same fresh state


def test_recommender_replica_killed_mid_load(server, users, ray_local):
    ray = ray_local
    results, stop = [], threading.Event()

    def client():
        with httpx.Client(base_url=server.base_url, timeout=30) as c:
            while not stop.is_set():
                t = time.perf_counter()
                try:
                    code = c.post("/recommend", json={"user_id": users[5], "k": 5}).status_code
                except httpx.HTTPError as e:
                    code = type(e).__name__
                results.append((code, time.perf_counter() - t))

    threads = [threading.Thread(target=client) for _ in range(4)]
    for t in threads:
        t.start()
    time.sleep(1.0)
    victim = _replica_actors(ray, "Recommender")[0]
    ray.kill(ray.get_actor(victim["name"], namespace=victim["namespace"]), no_restart=True)
    time.sleep(4.0)
    n_at_kill = len(results)
    for _ in range(120):  # wait for the controller to bring the replica back
        if len(_replica_actors(ray, "Recommender")) == 2 and victim["name"] not in {a["name"] for a in _replica_actors(ray, "Recommender")}:
            break
        time.sleep(0.5)
    time.sleep(2.0)
    stop.set()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads), "a request hung"
    assert len(results) > n_at_kill > 0
    assert all(code == 200 for code, _ in results[n_at_kill:]), results[n_at_kill:]
    assert max(s for _, s in results) < 30
    ok = sum(code == 200 for code, _ in results)
    assert ok >= 0.95 * len(results), results


def test_state_holder_restart_keeps_acknowledged_events(server, users, ray_local):
    ray = ray_local
    u = users[3]
    ev = {"user_id": u, "events": [{"item_id": 10, "event": "purchase"}, {"item_id": 20, "event": "purchase"}]}
    assert server.post("/events", json=ev, headers=AUTH).status_code == 200
    expected = server.post("/recommend", json={"user_id": u, "k": 10}).json()["items"]
    (holder,) = _replica_actors(ray, "UserState")
    ray.kill(ray.get_actor(holder["name"], namespace=holder["namespace"]), no_restart=True)
    t_end = time.time() + 120
    while True:  # each call answers (200, or 503 while the replacement replays the log) — never hangs
        got = server.post("/recommend", json={"user_id": u, "k": 10})
        assert got.status_code in (200, 503), got.text
        if got.status_code == 200 or time.time() > t_end:
            break
    assert got.status_code == 200, got.text
    assert got.json()["items"] == expected
    assert server.get(f"/users/{u}/interests").json()["fresh_events"] == 2
    (new,) = _replica_actors(ray, "UserState")
    assert new["name"] != holder["name"]


def test_hot_reload_serves_the_new_version(server, out, users):
    from ray import serve
    from serving.app import build_app

    u = users[2]  # has fresh events from an earlier test
    before = server.post("/recommend", json={"user_id": u, "k": 10}).json()["items"]
    v2 = out / "publish" / "v2"
    shutil.copytree(out / "publish" / "v1", v2)
    (v2 / "manifest.json").write_text(json.dumps({"version": 2}))
    errors, stop, versions = [], threading.Event(), set()

    def load():  # requests keep flowing while the new version loads
        with httpx.Client(base_url=server.base_url, timeout=30) as c:
            while not stop.is_set():
                r = c.post("/recommend", json={"user_id": users[0], "k": 3})
                if r.status_code != 200:
                    errors.append(r.status_code)
                else:
                    versions.add(r.json()["version"])

    t = threading.Thread(target=load)
    t.start()
    serve.run(build_app({"artifacts": str(v2), "event_log": str(out), "token": TOKEN, "recommender_replicas": 2}),
              name="interestrec", route_prefix="/")
    time.sleep(0.5)
    stop.set()
    t.join(timeout=60)
    assert errors == [] and "1" in versions
    assert server.get("/version").json()["version"] == "2"
    after = server.post("/recommend", json={"user_id": u, "k": 10}).json()
    assert after["version"] == "2" and after["items"] == before  # same log → same fresh state on the new version
