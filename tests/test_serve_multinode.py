"""`serve deploy` of the app on a two-node local cluster (``ray start --head`` + ``ray start --address``, each
with its own ``--temp-dir``, token auth), fresh events in a real redis-server, then a version change under
load through the deployments' ``user_config``: 0 failed requests and no replica restarted.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time

import httpx
import pytest
import yaml

from fixtures.artifacts import make_artifacts
from fixtures.cluster import LocalCluster
from fixtures.ports import free_port
from fixtures.redis_server import RedisServer

pytestmark = pytest.mark.multinode


def _config(out, store: str, port: int, version: str) -> dict:
    uc = {"artifacts": str(out), "version": version}
    return {"proxy_location": "EveryNode", "http_options": {"host": "127.0.0.1", "port": port},
            "applications": [{"name": "interestrec", "route_prefix": "/", "import_path": "interestrec.serving.app:build_app",
                              "runtime_env": {"env_vars": {"TOKENIZERS_PARALLELISM": "false"}},
                              "args": {"store": store, "token": "w", "read_token": "r", "recommender_replicas": 2,
                                       "recommender_cpus": 0.5, "text": False},
                              "deployments": [{"name": "Recommender", "user_config": uc}]}]}


def _replicas(cluster) -> dict:
    """Alive Recommender replica actors by name."""
    s = cluster.ray("list", "actors", "--address", cluster.dashboard, "--format", "json", "--filter", "state=ALIVE",
                    "--limit", "1000", timeout=60)
    return {a["name"]: a for a in json.loads(s.stdout or "[]") if "#Recommender#" in (a.get("name") or "")}


def test_serve_deploy_on_two_nodes_and_roll_a_version_under_load(tmp_path):
    out = tmp_path / "out"
    make_artifacts(out, version=1, d=16)
    v2 = out / "publish" / "v2"
    shutil.copytree(out / "publish" / "v1", v2)
    (v2 / "manifest.json").write_text(json.dumps({"version": 2}))
    redis = RedisServer(tmp_path / "redis").start()
    cluster = LocalCluster(tmp_path, head_cpus=1)
    try:
        cluster.add_worker(2, {})
        serve_bin = str(shutil.which("serve", path=cluster.env["PATH"]))
        port = free_port()
        cfg = tmp_path / "serve.yaml"

        def deploy(version: str) -> None:
            cfg.write_text(yaml.safe_dump(_config(out, redis.url, port, version)))
            r = subprocess.run([serve_bin, "deploy", str(cfg), "--address", cluster.dashboard], env=cluster.env,
                               capture_output=True, text=True, timeout=300)
            assert r.returncode == 0, r.stdout + r.stderr

        deploy("1")
        base = f"http://127.0.0.1:{port}"
        hdr = {"Authorization": "Bearer r"}
        t_end = time.time() + 600
        while time.time() < t_end:
            try:
                if httpx.get(base + "/version", headers=hdr, timeout=10).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(2)
        users = [1000, 1001, 1002]
        ev = httpx.post(base + "/events", json={"user_id": users[0], "events": [{"item_id": 30}], "idempotency_key": "k"},
                        headers={"Authorization": "Bearer w"}, timeout=30)
        assert ev.status_code == 200, ev.text
        before = _replicas(cluster)
        assert len(before) == 2
        errors, versions, stop = [], [], threading.Event()

        def load():
            with httpx.Client(base_url=base, headers=hdr, timeout=30) as c:
                while not stop.is_set():
                    r = c.post("/recommend", json={"user_id": users[0], "k": 3})
                    if r.status_code == 200:
                        versions.append(r.json()["version"])
                    else:
                        errors.append(r.status_code)

        threads = [threading.Thread(target=load) for _ in range(2)]
        for t in threads:
            t.start()
        time.sleep(1.0)
        deploy("2")
        t_end = time.time() + 300
        while time.time() < t_end and {httpx.get(base + "/version", headers=hdr, timeout=30).json()["version"]
                                       for _ in range(6)} != {"2"}:
            time.sleep(0.5)
        time.sleep(1.0)
        stop.set()
        for t in threads:
            t.join(timeout=60)
        assert errors == [] and versions[0] == "1" and versions[-1] == "2"
        assert set(_replicas(cluster)) == set(before)  # reconfigured in place: no replica restarted
        body = httpx.post(base + "/recommend", json={"user_id": users[0], "k": 3}, headers=hdr, timeout=30).json()
        assert body["version"] == "2" and body["fresh_events"] == 1  # the store is shared by every node's replicas
    finally:
        cluster.stop()
        redis.stop()
