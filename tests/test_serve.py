"""The Serve app over HTTP on 127.0.0.1, one hop (proxy → recommender replica with FastAPI ingress), on a
real redis-server store: endpoints, auth, bad input (a fuzz over the OpenAPI schema: never a 5xx), fresh
events (durable, idempotent, seen by every replica), a replica killed under load, the store killed and
restarted, and a version change under load through ``reconfigure`` (no replica restarts).
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from pathlib import Path

import httpx
import pytest

from fixtures.artifacts import make_artifacts
from fixtures.ports import free_port, wait_http
from fixtures.redis_server import RedisServer

# On a loaded 2-core machine the HTTP proxy can take longer than Serve's default 5 s ready check, after
# which the controller kills it; set before the session's Ray starts so its processes inherit it.
os.environ.setdefault("RAY_SERVE_PROXY_READY_CHECK_TIMEOUT_S", "60")
TOKEN, READ = "s3cret", "r3ad"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
RAUTH = {"Authorization": f"Bearer {READ}"}
APP = {"token": TOKEN, "read_token": READ, "recommender_replicas": 2, "recommender_cpus": 0.25,
       "max_k": 1000}  # k = the whole 240-item catalogue with read auth (the default cap is 100)


def _replica_actors(ray, deployment: str, app: str = "interestrec") -> list[dict]:
    return [a for a in ray.util.list_named_actors(all_namespaces=True) if f"{app}#{deployment}#" in a["name"]]


def _settled_replicas(ray, deployment: str, n: int, app: str = "interestrec", timeout: float = 120) -> set[str]:
    """Names of the deployment's replicas once the controller reports exactly ``n`` RUNNING and nothing else
    (no replica starting or stopping) and the named actors agree, twice in a row one second apart."""
    from ray import serve

    t_end, last = time.time() + timeout, None
    while time.time() < t_end:
        states = serve.status().applications[app].deployments[deployment].replica_states
        names = {a["name"] for a in _replica_actors(ray, deployment, app)}
        now = names if dict(states) == {"RUNNING": n} and len(names) == n else None
        if now is not None and now == last:
            return now
        last = now
        time.sleep(1.0)
    raise AssertionError(f"{deployment} did not settle at {n} running replicas: {states}, {names}")


@pytest.fixture(scope="module")
def out(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("serve") / "out"
    make_artifacts(out, version=1, d=384)  # the packaged MiniLM's dimension (cold-start text)
    (out / "publish" / "LATEST").write_text("v1")
    return out


@pytest.fixture(scope="module")
def redis_srv(tmp_path_factory):
    srv = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def port(ray_local) -> int:
    from ray import serve
    from ray.serve.context import _get_global_client

    serve.start(http_options={"host": "127.0.0.1", "port": free_port()})
    return _get_global_client().http_config.port  # the running ingress's port (Serve may already be up)


def deploy(out: Path, store: str, version: str, timeout_s: float = 600) -> None:
    """Deploy the app from a config, as ``serve deploy serving/config.yaml`` does (the version in user_config)."""
    from ray import serve
    from ray.serve.context import _get_global_client
    from ray.serve.schema import ServeDeploySchema

    uc = {"artifacts": str(out), "version": version}
    cfg = {"applications": [{"name": "interestrec", "route_prefix": "/", "import_path": "interestrec.serving.app:build_app",
                             "args": {"store": store, **APP},
                             "deployments": [{"name": "Recommender", "user_config": uc},
                                             {"name": "Encoder", "user_config": uc}]}]}
    _get_global_client().deploy_apps(ServeDeploySchema.model_validate(cfg))
    t_end = time.time() + timeout_s
    while time.time() < t_end:
        app = serve.status().applications.get("interestrec")
        deps = app.deployments if app else {}
        if app and app.status == "RUNNING" and deps and all(d.status == "HEALTHY" for d in deps.values()):
            return
        if app and app.status == "DEPLOY_FAILED":
            raise RuntimeError(app.message)
        time.sleep(0.5)
    raise TimeoutError("the app did not become RUNNING")


@pytest.fixture(scope="module")
def server(port, out, redis_srv):
    from ray import serve

    deploy(out, redis_srv.url, "1")
    wait_http(f"http://127.0.0.1:{port}/healthz")
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30, headers=RAUTH) as client:
        yield client
    serve.delete("interestrec")


@pytest.fixture(scope="module")
def users(out):
    import pyarrow.parquet as pq

    return sorted(set(pq.read_table(out / "publish" / "v1" / "ingest" / "events.parquet", columns=["user_id"])["user_id"].to_pylist()))


def test_health_version_clusters_and_openapi(server):
    assert server.get("/healthz").json() == {"status": "ok"}
    v = server.get("/version")
    assert v.json()["version"] == "1" and set(v.json()) == {"version", "replica"}  # no server paths
    assert v.headers.get("x-request-id")  # Serve's request id echoed
    mine = server.get("/version", headers={"x-request-id": "my-req-42"})
    assert mine.headers["x-request-id"] == "my-req-42"
    clusters = server.get("/clusters").json()["clusters"]
    assert len(clusters) == 4 and sum(c["size"] for c in clusters) == 48
    one = server.get("/clusters/2").json()
    assert one["id"] == 2 and len(one["top_items"]) == 10 and one["description"]
    spec = server.get("/openapi.json").json()
    ok = spec["paths"]["/recommend"]["post"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert ok["$ref"].endswith("RecommendResponse")
    assert {"/recommend/batch", "/users/{user_id}/similar", "/events"} <= set(spec["paths"])


def test_reads_need_the_read_token(server, users):
    body = {"user_id": users[0], "k": 3}
    assert server.post("/recommend", json=body, headers={"Authorization": ""}).status_code == 401
    assert server.post("/recommend", json=body, headers={"Authorization": "Bearer nope"}).status_code == 401
    assert server.get("/clusters", headers={"Authorization": "Bearer " + READ + "x"}).status_code == 401
    assert server.post("/recommend", json=body).status_code == 200


def test_recommend_known_user_with_explanations(server, users):
    r = server.post("/recommend", json={"user_id": users[0], "k": 7})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["user_id"] == users[0] and body["version"] == "1"
    assert len(body["items"]) == 7 and [i["rank"] for i in body["items"]] == list(range(1, 8))
    assert all(i["explanation"]["nearest_history_item"]["title"] for i in body["items"])  # read auth: own history
    assert all(i["explanation"]["cluster"] == body["cluster"] for i in body["items"])
    scores = [i["score"] for i in body["items"]]
    assert scores == sorted(scores, reverse=True)
    for mode in (True, "round_robin", "mmr"):
        div = server.post("/recommend", json={"user_id": users[0], "k": 7, "diversity": mode})
        assert div.status_code == 200 and len(div.json()["items"]) == 7
    seen = server.post("/recommend", json={"user_id": users[0], "k": 240, "exclude_seen": False}).json()["items"]
    assert len(seen) == 240
    top3 = [i["item_id"] for i in body["items"][:3]]
    ex = server.post("/recommend", json={"user_id": users[0], "k": 7, "exclude_items": top3}).json()["items"]
    assert not set(top3) & {i["item_id"] for i in ex} and [i["item_id"] for i in ex][:4] == [i["item_id"] for i in body["items"]][3:7]


def test_batch_endpoint_matches_single_calls(server, users):
    r = server.post("/recommend/batch", json={"user_ids": users[:5], "k": 5})
    assert r.status_code == 200, r.text
    res = r.json()["results"]
    assert [x["user_id"] for x in res] == users[:5]
    for u, x in zip(users[:5], res):
        single = server.post("/recommend", json={"user_id": u, "k": 5}).json()
        assert [i["item_id"] for i in x["items"]] == [i["item_id"] for i in single["items"]]
    bad = server.post("/recommend/batch", json={"user_ids": [users[0], 999999999]})
    assert bad.status_code == 404 and "999999999" in bad.text


def test_similar_users_and_their_items(server, users):
    r = server.get(f"/users/{users[0]}/similar", params={"n": 5, "k": 8})
    assert r.status_code == 200, r.text
    body = r.json()
    assert 1 <= len(body["users"]) <= 5 and users[0] not in {u["user_id"] for u in body["users"]}
    sims = [u["similarity"] for u in body["users"]]
    assert sims == sorted(sims, reverse=True)
    seen = {i["item_id"] for i in server.post("/recommend", json={"user_id": users[0], "k": 240, "exclude_seen": False}).json()["items"]}
    assert body["items"] and len(body["items"]) <= 8
    own = server.get(f"/users/{users[0]}/interests").json()["history_size"]
    assert own > 0 and seen  # the user's items are not offered back
    assert server.get("/users/999999999/similar").status_code == 404


def test_recommend_cold_history_and_text(server):
    hist = [{"item_id": 30, "event": "rate", "value": 4.5, "timestamp": 0}, {"item_id": 70, "event": "view"}]
    r = server.post("/recommend", json={"history": hist, "k": 5})
    assert r.status_code == 200, r.text
    items = r.json()["items"]
    assert len(items) == 5 and not {30, 70} & {i["item_id"] for i in items} and r.json()["user_id"] is None
    t = server.post("/recommend", json={"history": hist, "text": "a scary haunted house", "k": 5, "user_id": 77})
    assert t.status_code == 200, t.text
    assert t.json()["user_id"] == 77 and len(t.json()["items"]) == 5


BIG = 2**63


@pytest.mark.parametrize("raw,status,needle", [
    ('{"user_id": "abc"}', 422, "user_id"),
    ('{"user_id": 1000, "k": 0}', 422, "k"),
    ('{"user_id": 1000, "k": 1001}', 422, "k"),
    ('{"user_id": 1000, "diversity": "zigzag"}', 422, "diversity"),
    (f'{{"user_id": {BIG}}}', 422, "user_id"),
    (f'{{"user_id": {-BIG - 1}}}', 422, "user_id"),
    (f'{{"history": [{{"item_id": {BIG}}}]}}', 422, "item_id"),
    (f'{{"history": [{{"item_id": 30, "timestamp": {10**400}}}]}}', 422, "timestamp"),
    ('{"history": [{"item_id": 30, "timestamp": 5000000000}]}', 422, "timestamp"),
    ('{"history": [{"item_id": 30, "timestamp": -1}]}', 422, "timestamp"),
    ('{"history": [{"item_id": 30, "value": NaN}]}', 422, "value"),
    ('{"history": [{"item_id": 30, "value": Infinity}]}', 422, "value"),
    ('{"history": [{"item_id": 30}], "text": "\\ud800"}', 422, "UTF-8"),
    ('{"history": [{"item_id": 30, "event": "teleport"}]}', 422, "event"),
    ('{"history": [' + ",".join(['{"item_id": 30}'] * 1001) + "]}", 422, "history"),
    ("{}", 422, "user_id or a non-empty history"),
    ('{"user_id": 999999999}', 404, "unknown user 999999999"),
    ('{"history": [{"item_id": 424242424}]}', 404, "unknown item"),
])
def test_bad_recommend_requests(server, raw, status, needle):
    r = server.post("/recommend", content=raw.encode(), headers={"content-type": "application/json"})
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
    assert server.get(f"/clusters/{BIG}").status_code == 422
    assert server.get(f"/users/{BIG}/interests").status_code == 422
    assert server.get("/users/999999999/interests").status_code == 404


def test_events_are_durable_idempotent_and_change_recommendations(server, users, redis_srv):
    from interestrec.serving.stores import open_store

    u = users[2]
    before = server.post("/recommend", json={"user_id": u, "k": 10}).json()["items"]
    ev = {"user_id": u, "events": [{"item_id": i["item_id"], "event": "purchase"} for i in before[-3:]],
          "idempotency_key": "batch-1"}
    assert server.post("/events", json=ev).status_code == 401
    assert server.post("/events", json=ev, headers={"Authorization": "Bearer nope"}).status_code == 401
    r = server.post("/events", json=ev, headers=AUTH)
    assert r.status_code == 200, r.text
    assert r.json()["events"] == 3 and not r.json()["duplicate"]
    again = server.post("/events", json=ev, headers=AUTH)  # a client retry after a lost answer
    assert again.status_code == 200 and again.json()["duplicate"] and again.json()["first_seq"] == r.json()["first_seq"]
    other = server.post("/events", json={**ev, "events": ev["events"][:1]}, headers=AUTH)
    assert other.status_code == 409
    time.sleep(1.1)  # a retry in a later second: the events carry no timestamp, and "now" has moved on
    late = server.post("/events", json={k: v for k, v in ev.items() if k != "idempotency_key"},
                       headers={**AUTH, "Idempotency-Key": "batch-1"})  # the key as a header this time
    assert late.status_code == 200 and late.json()["duplicate"] and late.json()["first_seq"] == r.json()["first_seq"]
    after = server.post("/recommend", json={"user_id": u, "k": 10}).json()
    assert [i["item_id"] for i in after["items"]] != [i["item_id"] for i in before]
    assert not {i["item_id"] for i in before[-3:]} & {i["item_id"] for i in after["items"]}  # now seen → filtered
    assert after["fresh_events"] == 3
    stored = open_store(redis_srv.url).export()  # durable before the 200
    assert sorted(zip(stored["user_id"].to_pylist(), stored["item_id"].to_pylist())) == sorted((u, i["item_id"]) for i in before[-3:])
    assert server.get(f"/users/{u}/interests").json()["fresh_events"] == 3
    bad_item = server.post("/events", json={"user_id": u, "events": [{"item_id": 424242424}], "idempotency_key": "b1"},
                           headers=AUTH)
    assert bad_item.status_code == 404 and "unknown item" in bad_item.text
    bad_user = server.post("/events", json={"user_id": 5, "events": [{"item_id": 30}], "idempotency_key": "b2"}, headers=AUTH)
    assert bad_user.status_code == 404 and "unknown user 5" in bad_user.text
    assert server.post("/events", json={"user_id": u, "events": [], "idempotency_key": "b3"}, headers=AUTH).status_code == 422
    keyless = server.post("/events", json={"user_id": u, "events": [{"item_id": 30}]}, headers=AUTH)
    assert keyless.status_code == 422 and "idempotency key" in keyless.json()["detail"]  # nothing stored (below)
    zero = server.post("/events", json={"user_id": users[6], "events": [{"item_id": 30, "timestamp": 0}]},
                       headers={**AUTH, "Idempotency-Key": "zero"})
    assert zero.status_code == 200
    assert 0 in open_store(redis_srv.url).export()["timestamp"].to_pylist()  # timestamp 0 kept, not "now"
    assert open_store(redis_srv.url).export().num_rows == 4


def test_events_posted_once_are_seen_by_every_replica(server, users):
    u = users[4]
    assert server.post("/events", json={"user_id": u, "events": [{"item_id": 50, "event": "purchase"}], "idempotency_key": "r1"},
                       headers=AUTH).status_code == 200
    replicas, bodies = set(), []
    for _ in range(80):
        b = server.post("/recommend", json={"user_id": u, "k": 10}).json()
        replicas.add(b["replica"])
        bodies.append([i["item_id"] for i in b["items"]])
        if len(replicas) == 2 and len(bodies) >= 6:
            break
    assert len(replicas) == 2  # both recommender replicas answered …
    assert all(b == bodies[0] for b in bodies) and 50 not in bodies[0]  # … with the same fresh state


def test_fuzz_openapi_schema_never_answers_5xx(server):
    from fixtures.fuzz_openapi import fuzz

    counts = fuzz(server, server.get("/openapi.json").json(), examples=60,
                  headers=lambda path: AUTH if path == "/events" else RAUTH)
    assert counts["requests"] >= 300 and counts[">=500"] == 0, counts
    assert counts["4xx"] > 0 and counts["2xx"] > 0  # both sides were reached


def test_recommender_replica_killed_mid_load(server, users, ray_local, redis_srv):
    """Readers and writers while a replica is SIGKILLed: no 5xx (the ingress retries a request whose replica
    died on another one), every acknowledged write stored exactly once."""
    ray = ray_local
    results, stop = [], threading.Event()  # (route, status or error name, seconds, start time)
    acked: dict[str, int] = {}  # idempotency key -> the batch's timestamp, once answered 200
    dropped: list[float] = []  # reads whose connection closed with no answer (start times)
    writer = users[8]

    def reader():
        with httpx.Client(base_url=server.base_url, timeout=30, headers=RAUTH) as c:
            while not stop.is_set():
                t = time.perf_counter()
                try:
                    code = c.post("/recommend", json={"user_id": users[5], "k": 5}).status_code
                except httpx.RemoteProtocolError:  # closed with no answer at the kill: a read is retried at once
                    dropped.append(t)
                    continue
                except httpx.HTTPError as e:
                    code = type(e).__name__
                results.append(("read", code, time.perf_counter() - t, t))

    def write(c: httpx.Client, key: str, ts: int) -> None:
        for _ in range(20):  # a 503 says: retry with the same key
            t = time.perf_counter()
            r = c.post("/events", json={"user_id": writer, "events": [{"item_id": 30, "timestamp": ts}],
                                        "idempotency_key": key})
            results.append(("write", r.status_code, time.perf_counter() - t, t))
            if r.status_code == 200:
                acked[key] = ts
                return
            assert r.status_code == 503 and r.headers.get("retry-after"), (r.status_code, r.text)
            time.sleep(float(r.headers["retry-after"]))

    def writer_loop(w: int):
        with httpx.Client(base_url=server.base_url, timeout=30, headers=AUTH) as c:
            n = 0
            while not stop.is_set():
                write(c, f"kill-{w}-{n}", 1_000_000 + 2 * n + w)  # unique per batch
                n += 1

    threads = [threading.Thread(target=reader) for _ in range(3)] + [threading.Thread(target=writer_loop, args=(w,))
                                                                       for w in range(2)]
    for t in threads:
        t.start()
    time.sleep(1.0)
    victim = _replica_actors(ray, "Recommender")[0]
    t_kill = time.perf_counter()
    ray.kill(ray.get_actor(victim["name"], namespace=victim["namespace"]), no_restart=True)
    names = _settled_replicas(ray, "Recommender", 2)  # the controller brought the replica back
    t_settled = time.perf_counter()
    assert victim["name"] not in names
    time.sleep(3.0)
    stop.set()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads), "a request hung"
    # each non-200 as (route, code, start after the kill in s, latency in s)
    failed = [(route, code, round(t0 - t_kill, 2), round(s, 2)) for route, code, s, t0 in results if code != 200]
    assert not [f for f in failed if not (f[0] == "write" and f[1] == 503)], failed  # reads: none; writes: 503 only
    # at most one read, in flight at the kill, saw its connection closed without an answer (and its retry got 200)
    assert len(dropped) <= 1 and all(abs(t0 - t_kill) < 2.0 for t0 in dropped), (dropped, t_kill)
    assert any(t0 < t_kill < t0 + s or t0 > t_kill for *_, s, t0 in results)  # requests did overlap the kill
    assert [t0 for *_, t0 in results if t0 > t_settled] and max(s for _, _, s, _ in results) < 30
    from interestrec.serving.stores import open_store

    stored = open_store(redis_srv.url).export().to_pandas()
    mine = stored[stored["user_id"] == writer]["timestamp"].value_counts()
    assert len(acked) > 10 and all(mine.get(ts, 0) == 1 for ts in acked.values()), mine  # each ack: exactly once
    assert set(mine.index) == set(acked.values())  # nothing stored that was not acknowledged in the end


def test_store_killed_and_restarted_keeps_acknowledged_events(server, users, redis_srv):
    u = users[3]
    ev = {"user_id": u, "events": [{"item_id": 10, "event": "purchase"}, {"item_id": 20, "event": "purchase"}],
          "idempotency_key": "before-kill"}
    assert server.post("/events", json=ev, headers=AUTH).status_code == 200
    expected = server.post("/recommend", json={"user_id": u, "k": 10}).json()["items"]
    redis_srv.kill()  # kill -9 right after the acknowledgement
    down = server.post("/events", json={"user_id": u, "events": [{"item_id": 30}], "idempotency_key": "while-down"},
                       headers=AUTH)
    assert down.status_code == 503, down.text  # the client learns the write was not confirmed …
    assert down.headers["retry-after"] and "retry with the same Idempotency-Key ('while-down')" in down.json()["detail"]
    stale = server.post("/recommend", json={"user_id": u, "k": 10})
    assert stale.status_code == 200 and stale.json()["fresh_events"] == 0  # reads fall back to the artifacts
    redis_srv.start()  # same port, same AOF
    t_end = time.time() + 30
    while True:
        got = server.post("/recommend", json={"user_id": u, "k": 10})
        if got.json().get("fresh_events") == 2 or time.time() > t_end:
            break
        time.sleep(0.2)
    assert got.status_code == 200 and got.json()["items"] == expected
    assert server.get(f"/users/{u}/interests").json()["fresh_events"] == 2  # … and it was never applied


def test_version_change_under_load_through_reconfigure(server, out, users, ray_local, redis_srv):
    u = users[2]  # has fresh events from an earlier test
    before = server.post("/recommend", json={"user_id": u, "k": 10}).json()["items"]
    replicas_before = _settled_replicas(ray_local, "Recommender", 2)
    v2 = out / "publish" / "v2"
    shutil.copytree(out / "publish" / "v1", v2)
    (v2 / "manifest.json").write_text(json.dumps({"version": 2}))
    errors, stop, versions = [], threading.Event(), []

    def load():  # requests keep flowing while the new version loads
        with httpx.Client(base_url=server.base_url, timeout=30, headers=RAUTH) as c:
            while not stop.is_set():
                r = c.post("/recommend", json={"user_id": users[0], "k": 3})
                if r.status_code != 200:
                    errors.append(r.status_code)
                else:
                    versions.append(r.json()["version"])

    threads = [threading.Thread(target=load) for _ in range(3)]
    for t in threads:
        t.start()
    time.sleep(0.5)
    deploy(out, redis_srv.url, "2")
    t_end = time.time() + 120
    while {server.get("/version").json()["version"] for _ in range(6)} != {"2"} and time.time() < t_end:
        time.sleep(0.2)  # RUNNING may be reported just before the last replica swapped
    time.sleep(1.0)
    stop.set()
    for t in threads:
        t.join(timeout=60)
    assert errors == [] and versions[0] == "1" and versions[-1] == "2"
    assert _settled_replicas(ray_local, "Recommender", 2) == replicas_before  # no restart
    assert {server.get("/version").json()["version"] for _ in range(10)} == {"2"}
    after = server.post("/recommend", json={"user_id": u, "k": 10}).json()
    assert after["version"] == "2" and after["items"] == before  # same store → same fresh state on the new version



def test_open_reads_on_sqlite_hide_history_and_warn(port, out, users, tmp_path_factory, caplog, monkeypatch):
    """A second app as `serve run serving/config.yaml` ships it: open reads (a start-up warning), no write
    token configured (one is generated and logged), the embedded SQLite store."""
    import logging
    import re

    from ray import serve

    from interestrec.serving.app import build_app

    monkeypatch.delenv("INTERESTREC_TOKEN", raising=False)
    db = tmp_path_factory.mktemp("sqlite") / "events.db"
    with caplog.at_level(logging.WARNING, logger="ray.serve"):
        app = build_app({"artifacts": str(out), "store": f"sqlite://{db}", "text": False, "recommender_cpus": 0.25})
    assert "reads open to anyone" in caplog.text
    generated = re.search(r"POST /events needs this generated one: 'Authorization: Bearer (\S+)'", caplog.text).group(1)
    assert len(generated) >= 32
    serve.run(app, name="open", route_prefix="/open")
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}/open", timeout=30) as c:
            body = c.post("/recommend", json={"user_id": users[7], "k": 5}).json()  # no token needed …
            assert len(body["items"]) == 5
            assert all(i["explanation"]["nearest_history_item"] is None for i in body["items"])  # … nor history shown
            cold = c.post("/recommend", json={"history": [{"item_id": 30}], "k": 3}).json()
            assert all(i["explanation"]["nearest_history_item"] for i in cold["items"])  # the caller's own history
            sim = c.get(f"/users/{users[7]}/similar").json()
            assert sim["users"] == [] and sim["items"]  # other users' ids only with read auth
            for path, body in (("/recommend", {"user_id": users[7], "k": 240, "exclude_seen": False}),
                               ("/recommend/batch", {"user_ids": [users[7]], "k": 240, "exclude_seen": False})):
                refused = c.post(path, json=body)  # the complement of a k=all list would be the user's history
                assert refused.status_code == 403 and "exclude_seen" in refused.json()["detail"], refused.text
            write = {"user_id": users[7], "events": [{"item_id": 30}], "idempotency_key": "w1"}
            assert c.post("/events", json=write).status_code == 401
            assert c.post("/events", json=write, headers=AUTH).status_code == 401  # another deployment's token
            r = c.post("/events", json=write,
                       headers={"Authorization": f"Bearer {generated}"})
            assert r.status_code == 200
            mine = c.post("/recommend", json={"user_id": users[7], "k": 5}).json()
            assert mine["fresh_events"] is None and 30 not in {i["item_id"] for i in mine["items"]}  # no size shown
            interests = c.get(f"/users/{users[7]}/interests").json()
            assert interests["history_size"] is None and interests["fresh_events"] is None and interests["interests"]
        from interestrec.serving.stores import open_store

        assert open_store(f"sqlite://{db}").export()["item_id"].to_pylist() == [30]
    finally:
        serve.delete("open")


def test_placeholder_tokens_are_refused():
    from interestrec.serving.app import build_app

    with pytest.raises(ValueError, match="token is still a placeholder"):
        build_app({"token": "change-me-write-token", "text": False})


def test_a_write_the_store_does_not_confirm_is_a_503_to_retry(out, users, tmp_path):
    """Whatever the store raises (here a reset connection, not a StoreError) the answer is a StoreError (503
    with Retry-After) that names the key to retry with, never a 500."""
    import asyncio

    from interestrec.recommend.config import ServeConfig
    from interestrec.serving import schemas as S
    from interestrec.serving.app import Recommender
    from interestrec.serving.errors import KeyConflict, StoreError

    cls = next(c for c in Recommender.func_or_class.__mro__ if "check_health" in vars(c))  # the class under the ingress
    rec = cls(ServeConfig(store=f"sqlite://{tmp_path}/ev.db", token="w", read_token="r"))
    rec.reconfigure({"artifacts": str(out), "version": "1"})
    req = S.EventsRequest(user_id=users[0], events=[{"item_id": 30}])
    sqlite = rec.store

    class Unreachable:
        def append(self, *args):
            raise ConnectionResetError("connection reset by peer")

    rec.store = Unreachable()
    with pytest.raises(StoreError, match=r"retry with the same Idempotency-Key \('k-1'\)"):
        asyncio.run(rec.events(req, authorization="Bearer w", idempotency_key="k-1"))
    rec.store = sqlite  # the retry, once the store is back, applies it once
    assert asyncio.run(rec.events(req, authorization="Bearer w", idempotency_key="k-1"))["duplicate"] is False
    assert asyncio.run(rec.events(req, authorization="Bearer w", idempotency_key="k-1"))["duplicate"] is True
    other = S.EventsRequest(user_id=users[0], events=[{"item_id": 40}])
    with pytest.raises(KeyConflict):
        asyncio.run(rec.events(other, authorization="Bearer w", idempotency_key="k-1"))


@pytest.mark.slow  # a second Serve app start
def test_encoder_dimension_mismatch_fails_start_up(port, tmp_path):
    """Artifacts of dimension 32 with the 384-d packaged encoder: the deployment fails with a clear message."""
    from ray import serve

    from interestrec.serving.app import build_app

    small = tmp_path / "small"
    make_artifacts(small, version=1, d=32)
    (small / "publish" / "LATEST").write_text("v1")
    app = build_app({"artifacts": str(small), "store": f"sqlite://{tmp_path}/ev.db", "recommender_cpus": 0.25})
    try:
        with pytest.raises(RuntimeError, match="Encoder"):
            serve.run(app, name="mismatch", route_prefix="/mismatch")
        msg = serve.status().applications["mismatch"].deployments["Encoder"].message
        assert "dimension 384 differs from version 1's item vectors (32)" in msg, msg
    finally:
        serve.delete("mismatch")
