"""The Serve app over HTTP on 127.0.0.1: endpoints, bad input, fresh events, durable state, hot reload."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def artifacts_dir(tmp_path_factory, ml_subset):
    out = tmp_path_factory.mktemp("serve") / "out"
    r = subprocess.run([sys.executable, str(ROOT / "jobs/pipeline.py"), "--data", str(ml_subset), "--out", str(out),
                        "--stages", "ingest,encode,cluster,dynamics,publish", "--set", "cluster.k=4",
                        "--set", "encode.also_text=false"], capture_output=True, text=True, timeout=1200, cwd=ROOT)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return out


@pytest.fixture(scope="module")
def server(ray_local, artifacts_dir):
    from ray import serve

    sys.path.insert(0, str(ROOT))
    from serving.app import build_app

    port = _free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    serve.run(build_app({"artifacts": str(artifacts_dir), "token": "s3cret"}), name="interestrec", route_prefix="/")
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
        yield client
    serve.shutdown()


@pytest.fixture(scope="module")
def users(artifacts_dir):
    import pyarrow.parquet as pq

    return sorted(set(pq.read_table(artifacts_dir / "ingest" / "events.parquet", columns=["user_id"])["user_id"].to_pylist()))


def test_health_version_and_clusters(server):
    assert server.get("/healthz").json() == {"status": "ok"}
    assert server.get("/version").json()["version"] == "1"  # publish/v1
    clusters = server.get("/clusters").json()["clusters"]
    assert len(clusters) == 4 and sum(c["size"] for c in clusters) > 0
    one = server.get("/clusters/0").json()
    assert one["id"] == 0 and len(one["top_items"]) == 10 and "lineage" in one


def test_recommend_known_user_with_explanations(server, users):
    r = server.post("/recommend", json={"user_id": users[0], "k": 7})
    assert r.status_code == 200
    body = r.json()
    assert len(body["items"]) == 7 and [i["rank"] for i in body["items"]] == list(range(1, 8))
    assert all(i["explanation"]["nearest_history_item"]["title"] for i in body["items"])
    scores = [i["score"] for i in body["items"]]
    assert scores == sorted(scores, reverse=True)
    div = server.post("/recommend", json={"user_id": users[0], "k": 7, "diversity": True}).json()
    assert len({i["explanation"]["interest"] for i in div["items"]}) >= len({i["explanation"]["interest"] for i in body["items"]})


def test_recommend_cold_history_and_text(server):
    r = server.post("/recommend", json={"history": [{"item_id": 1, "event": "rate"}, {"item_id": 260, "event": "view"}],
                                        "text": "space adventure with robots", "k": 5})
    assert r.status_code == 200, r.text
    items = r.json()["items"]
    assert len(items) == 5 and not {1, 260} & {i["item_id"] for i in items}


def test_user_interests(server, users):
    body = server.get(f"/users/{users[1]}/interests").json()
    assert body["user_id"] == users[1] and 1 <= len(body["interests"]) <= 4


@pytest.mark.parametrize("payload,status,needle", [
    ({"user_id": "abc"}, 422, "user_id"),
    ({"user_id": 1, "k": 0}, 422, "k"),
    ({"user_id": 1, "k": 1001}, 422, "k"),
    ({"user_id": 999999999}, 404, "unknown user"),
    ({"history": [{"item_id": 424242424}]}, 404, "unknown item"),
    ({}, 422, "user_id or a non-empty history"),
])
def test_bad_recommend_requests(server, payload, status, needle):
    r = server.post("/recommend", json=payload)
    assert r.status_code == status, r.text
    assert needle in r.text


def test_body_over_1mb_is_413(server):
    r = server.post("/recommend", content=b"{" + b" " * (1 << 20) + b"}", headers={"content-type": "application/json"})
    assert r.status_code == 413


def test_unknown_cluster_is_404(server):
    assert server.get("/clusters/999").status_code == 404


def test_events_need_the_token_and_change_recommendations(server, users, artifacts_dir):
    u = users[2]
    before = server.post("/recommend", json={"user_id": u, "k": 10}).json()["items"]
    ev = {"user_id": u, "events": [{"item_id": i["item_id"], "event": "purchase"} for i in before[-3:]]}
    assert server.post("/events", json=ev).status_code == 401
    r = server.post("/events", json=ev, headers={"Authorization": "Bearer s3cret"})
    assert r.status_code == 200, r.text
    after = server.post("/recommend", json={"user_id": u, "k": 10}).json()["items"]
    assert [i["item_id"] for i in after] != [i["item_id"] for i in before]
    assert not {i["item_id"] for i in before[-3:]} & {i["item_id"] for i in after}  # now seen → filtered
    log = (artifacts_dir / "publish" / "v1" / "events" / "log.jsonl").read_text().splitlines()
    assert any(f'"user_id": {u}' in line for line in log)  # durable before the 200
    bad = server.post("/events", json={"user_id": u, "events": [{"item_id": 424242424}]}, headers={"Authorization": "Bearer s3cret"})
    assert bad.status_code == 404


def test_state_holder_restart_keeps_acknowledged_events(server, users):
    import ray
    from ray import serve

    u = users[3]
    ev = {"user_id": u, "events": [{"item_id": 1, "event": "purchase"}, {"item_id": 2, "event": "purchase"}]}
    assert server.post("/events", json=ev, headers={"Authorization": "Bearer s3cret"}).status_code == 200
    expected = server.post("/recommend", json={"user_id": u, "k": 10}).json()["items"]
    handle = serve.get_deployment_handle("UserState", app_name="interestrec")
    actor_names = [a for a in ray.util.list_named_actors(all_namespaces=True) if "UserState" in a["name"]]
    assert actor_names
    ray.kill(ray.get_actor(actor_names[0]["name"], namespace=actor_names[0]["namespace"]), no_restart=False)
    import time

    for _ in range(60):  # the controller brings up a new replica, which replays the log
        try:
            got = server.post("/recommend", json={"user_id": u, "k": 10})
            if got.status_code == 200 and got.json()["items"] == expected:
                break
        except httpx.HTTPError:
            pass
        time.sleep(1)
    assert got.status_code == 200 and got.json()["items"] == expected
    assert handle is not None


def test_hot_reload_serves_the_new_version(server, artifacts_dir):
    import threading

    from ray import serve
    from serving.app import build_app

    v2 = artifacts_dir / "publish" / "v2"
    shutil.copytree(artifacts_dir / "publish" / "v1", v2, ignore=shutil.ignore_patterns("events"))
    (v2 / "manifest.json").write_text((v2 / "manifest.json").read_text().replace('"version": 1', '"version": 2', 1))
    errors, stop = [], threading.Event()

    def load():  # requests keep flowing while the new version loads
        while not stop.is_set():
            r = server.get("/healthz")
            if r.status_code != 200:
                errors.append(r.status_code)

    t = threading.Thread(target=load)
    t.start()
    serve.run(build_app({"artifacts": str(v2), "token": "s3cret"}), name="interestrec", route_prefix="/")
    stop.set()
    t.join()
    assert server.get("/version").json()["version"] == "2"
    assert errors == []
