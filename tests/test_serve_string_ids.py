"""A string-id event log (``"AE…"`` users, ``"B0…"`` items, JSONL) through the real ingest stage, then the
Serve app over HTTP on 127.0.0.1: requests and responses speak the original string ids end to end.

The encode/cluster/dynamics/graph artifacts are the planted-topic ones of ``fixtures.artifacts.make_artifacts``,
re-keyed through the ingest's id maps (the real stages are exercised by the pipeline tests).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import httpx
import numpy as np
import pyarrow as pa
import pytest

from fixtures.artifacts import make_artifacts
from interestrec import artifacts

os.environ.setdefault("RAY_SERVE_PROXY_READY_CHECK_TIMEOUT_S", "60")
TOKEN = "s3cret"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
APP_NAME = "interestrec-strids"
pytestmark = pytest.mark.slow  # ~40 s: a real ingest and a Serve deployment


def user_str(u: int) -> str:
    return f"AE{u:06d}XQ"


def item_str(i: int) -> str:
    return f"B0{i:08d}"


def _rekey(src: Path, dst: Path, users, items) -> None:
    """Copy the non-ingest artifacts of ``src`` to ``dst`` with int ids replaced by the string ids' indices."""
    import pyarrow.parquet as pq

    u_of = lambda col: pa.array(users.to_index([user_str(int(x)) for x in col.to_pylist()]), pa.int64())  # noqa: E731
    for rel in ("encode/items.parquet", "graph/items.parquet"):  # items nobody interacted with are not in the log
        t = pq.read_table(src / rel)
        idx = items.to_index([item_str(int(x)) for x in t["item_id"].to_pylist()], missing=-1)
        t = t.set_column(0, "item_id", pa.array(idx, pa.int64())).filter(pa.array(idx >= 0))
        artifacts.write_parquet(dst / rel, t)
    for rel in ("encode/users.parquet", "cluster/assignments.parquet", "dynamics/assignments.parquet",
                "graph/users.parquet"):
        t = pq.read_table(src / rel)
        if "interests" in t.column_names:
            rows = [[{**i, "medoid_item_id": int(items.to_index([item_str(i["medoid_item_id"])])[0])} for i in r]
                    for r in t["interests"].to_pylist()]
            t = t.set_column(t.column_names.index("interests"), "interests", pa.array(rows, t.schema.field("interests").type))
        artifacts.write_parquet(dst / rel, t.set_column(0, "user_id", u_of(t["user_id"])))
    artifacts.write_npy(dst / "cluster" / "centroids.npy", np.load(src / "cluster" / "centroids.npy"))
    for rel in ("dynamics/clusters.json", "dynamics/lineage.json"):
        artifacts.write_json(dst / rel, json.loads((src / rel).read_text()))


@pytest.fixture(scope="module")
def out(tmp_path_factory, ray_local) -> Path:
    """``out/publish/v1``: ingest of a JSONL log with string ids + the re-keyed model artifacts."""
    import pyarrow.parquet as pq

    from interestrec.data import IngestConfig
    from interestrec.data.stage import ingest
    from interestrec.ids import load_id_maps

    base = tmp_path_factory.mktemp("strids")
    src = make_artifacts(base / "src", n_items=120, n_users=24, d=16)
    ev = pq.read_table(src / "ingest" / "events.parquet").to_pylist()
    log = base / "log.jsonl"
    log.write_text("\n".join(json.dumps({"user_id": user_str(r["user_id"]), "item_id": item_str(r["item_id"]),
                                         "timestamp": r["timestamp"], "event": r["event"], "value": r["value"],
                                         "text": r["text"]}) for r in ev) + "\n")
    out = base / "out"
    root = out / "publish" / "v1"
    summary = ingest(str(log), IngestConfig(format="jsonl"), str(root / "ingest"))
    assert summary["rejected"] == 0 and summary["accepted"] == len(ev)
    users, items = load_id_maps(str(root / "ingest"))
    assert users.kind == items.kind == "dense"
    _rekey(src, root, users, items)
    artifacts.write_json(root / "manifest.json", {"version": 1, "metrics": {}})
    (out / "publish" / "LATEST").write_text("v1\n")
    return out


@pytest.fixture(scope="module")
def server(out, tmp_path_factory):
    from ray import serve
    from ray.serve.context import _get_global_client
    from ray.serve.schema import ServeDeploySchema

    from fixtures.ports import free_port, wait_http

    serve.start(http_options={"host": "127.0.0.1", "port": free_port()})
    port = _get_global_client().http_config.port  # the running proxy's port (Serve may already be up)
    store = f"sqlite://{tmp_path_factory.mktemp('store')}/events.db"
    uc = {"artifacts": str(out), "version": "1"}
    cfg = {"applications": [{"name": APP_NAME, "route_prefix": "/strids", "import_path": "interestrec.serving.app:build_app",
                             "args": {"store": store, "token": TOKEN, "text": False, "recommender_replicas": 1,
                                      "recommender_cpus": 0.25},
                             "deployments": [{"name": "Recommender", "user_config": uc}]}]}
    _get_global_client().deploy_apps(ServeDeploySchema.model_validate(cfg))
    t_end = time.time() + 300
    while time.time() < t_end:
        app = serve.status().applications.get(APP_NAME)
        if app and app.status == "RUNNING":
            break
        if app and app.status == "DEPLOY_FAILED":
            raise RuntimeError(app.message)
        time.sleep(0.5)
    else:
        raise TimeoutError("the app did not become RUNNING")
    wait_http(f"http://127.0.0.1:{port}/strids/healthz")
    with httpx.Client(base_url=f"http://127.0.0.1:{port}/strids", timeout=30) as client:
        yield client
    serve.delete(APP_NAME)


def test_known_string_user_gets_original_item_ids(server, out):
    from interestrec.ids import load_id_maps

    users, items = load_id_maps(str(out / "publish" / "v1" / "ingest"))
    known_items = set(items.ids.tolist())
    r = server.post("/recommend", json={"user_id": user_str(1003), "k": 5})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["user_id"] == user_str(1003) and len(body["items"]) == 5
    got = [i["item_id"] for i in body["items"]]
    assert all(isinstance(i, str) and i.startswith("B0") for i in got) and set(got) <= known_items
    ex = server.post("/recommend", json={"user_id": user_str(1003), "k": 5, "exclude_items": got[:2] + ["B0nope"]}).json()
    assert not set(got[:2]) & {i["item_id"] for i in ex["items"]}
    batch = server.post("/recommend/batch", json={"user_ids": [user_str(1003), user_str(1004)], "k": 5}).json()["results"]
    assert [b["user_id"] for b in batch] == [user_str(1003), user_str(1004)]
    assert [i["item_id"] for i in batch[0]["items"]] == got


def test_unknown_or_wrong_ids_are_4xx(server):
    r = server.post("/recommend", json={"user_id": "AE999999ZZ"})
    assert r.status_code == 404 and "unknown user AE999999ZZ" in r.text
    assert server.post("/recommend", json={"user_id": 1003}).status_code == 404  # an int is not one of these ids
    assert server.get("/users/AE999999ZZ/interests").status_code == 404
    assert server.post("/recommend/batch", json={"user_ids": [user_str(1003), "AEnope"]}).status_code == 404
    r = server.post("/recommend", json={"history": [{"item_id": "B0nope"}]})
    assert r.status_code == 404 and "unknown item B0nope" in r.text


def test_cold_history_users_and_clusters_speak_string_ids(server):
    hist = [{"item_id": item_str(10), "event": "rate", "value": 4.5, "timestamp": 1_600_000_000},
            {"item_id": item_str(50)}]
    r = server.post("/recommend", json={"history": hist, "k": 5, "user_id": "AEnewcomer"})
    assert r.status_code == 200, r.text
    items = [i["item_id"] for i in r.json()["items"]]
    assert r.json()["user_id"] == "AEnewcomer" and len(items) == 5 and not {item_str(10), item_str(50)} & set(items)
    it = server.get(f"/users/{user_str(1005)}/interests").json()
    assert it["user_id"] == user_str(1005) and all(i["nearest_item"]["item_id"].startswith("B0") for i in it["interests"])
    sim = server.get(f"/users/{user_str(1005)}/similar", params={"n": 3, "k": 4}).json()
    assert sim["user_id"] == user_str(1005) and all(i["item_id"].startswith("B0") for i in sim["items"])


def test_events_with_string_ids_change_recommendations(server):
    u = user_str(1007)
    before = [i["item_id"] for i in server.post("/recommend", json={"user_id": u, "k": 10}).json()["items"]]
    ev = {"user_id": u, "events": [{"item_id": i, "event": "purchase"} for i in before[-3:]], "idempotency_key": "s-1"}
    r = server.post("/events", json=ev, headers=AUTH)
    assert r.status_code == 200, r.text
    assert r.json()["user_id"] == u and r.json()["events"] == 3
    assert server.post("/events", json=ev, headers=AUTH).json()["duplicate"] is True
    after = server.post("/recommend", json={"user_id": u, "k": 10}).json()
    assert after["fresh_events"] is None and after["user_id"] == u  # open reads never show a history's size
    assert not set(before[-3:]) & {i["item_id"] for i in after["items"]}  # now seen -> filtered
    bad = server.post("/events", json={"user_id": u, "events": [{"item_id": "B0nope"}], "idempotency_key": "s-2"},
                      headers=AUTH)
    assert bad.status_code == 404 and "unknown item B0nope" in bad.text


def test_fuzz_with_string_ids_never_answers_5xx(server):
    from fixtures.fuzz_openapi import fuzz

    counts = fuzz(server, server.get("/openapi.json").json(), examples=25,
                  headers=lambda path: AUTH if path == "/events" else None)
    assert counts[">=500"] == 0 and counts["4xx"] > 0 and counts["2xx"] > 0, counts
