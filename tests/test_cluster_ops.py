"""Real cluster operation: `ray start --head` (+ a worker node) on this machine and `ray job submit`.

The head is started with token authentication on (``RAY_AUTH_MODE=token``, as Ray 2.59+ local clusters
default to), so job submission must present the token, exactly as a user does. The project is shipped
through the job's runtime_env (``--working-dir .`` + ``py_modules``), and the test checks the driver and
the workers import it from there rather than from the developer's install.

Marked ``cluster_ops`` so it runs after the in-process Ray tests (``conftest.py`` moves those tests to the
end of the session); each cluster lives in its own process group and is killed with it, so other Ray
instances on the machine are untouched.

The clusters are ``fixtures.cluster.LocalCluster``s (each node with its own ``--temp-dir``: see there).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fixtures.cluster import LocalCluster

ROOT = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.slow, pytest.mark.cluster_ops]


@pytest.fixture
def cluster(tmp_path):
    c = LocalCluster(tmp_path)
    yield c
    c.stop()


def test_job_submit_needs_the_token_and_ships_the_package(cluster, tmp_path):
    probe = "import ray, interestrec; ray.init(); print('DRIVER', interestrec.__file__); " \
            "f = ray.remote(lambda: __import__('interestrec').__file__); print('TASK', ray.get(f.remote()))"
    env = {k: v for k, v in cluster.env.items() if k not in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN_PATH")}
    env["HOME"] = str(tmp_path)  # no ~/.ray/auth_token either
    denied = cluster.submit("python", "-c", probe, env=env)
    assert denied.returncode != 0
    assert "token" in (denied.stdout + denied.stderr).lower()

    ok = cluster.submit("python", "-c", probe)
    assert ok.returncode == 0, ok.stdout[-3000:] + ok.stderr[-3000:]
    lines = {ln.split(" ", 1)[0]: ln.split(" ", 1)[1] for ln in ok.stdout.splitlines() if ln.startswith(("DRIVER ", "TASK "))}
    for where in ("DRIVER", "TASK"):
        assert "runtime_resources" in lines[where], lines  # imported from the shipped package, not the dev install
        assert str(ROOT / "library") not in lines[where]


@pytest.mark.multinode
def test_pipeline_on_two_nodes_places_actors_on_both(cluster, tmp_path, ml_subset):
    cluster.add_worker(cpus=2, resources={"worker_node": 1})
    out = tmp_path / "out"
    r = cluster.submit("python", "jobs/pipeline.py", "--data", str(ml_subset), "--out", str(out),
                       "--stages", "ingest,encode,cluster", "--set", "cluster.k=4", "--set", "cluster.num_actors=2",
                       "--set", "cluster.scheduling=SPREAD", "--set", "encode.num_actors=2", "--set", "encode.num_cpus=1",
                       "--set", "encode.also_text=false")
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-4000:]
    for stage in ("ingest", "encode", "cluster"):
        assert (out / stage / "summary.json").exists()
    assert json.loads((out / "cluster" / "summary.json").read_text())["k"] == 4
    actors = json.loads(cluster.ray("list", "actors", "--address", cluster.dashboard, "--format", "json",
                                    "--detail", "--limit", "1000").stdout)
    by_class: dict[str, set] = {}
    for a in actors:
        by_class.setdefault(a["class_name"], set()).add(a["node_id"])
    shard_nodes = set().union(*[nodes for name, nodes in by_class.items() if "ShardActor" in name])
    assert len(shard_nodes) == 2, by_class  # k-means shards on both nodes
    embed_nodes = set().union(*[nodes for name, nodes in by_class.items() if "Embed" in name])
    assert embed_nodes, by_class


def test_scale_job_runs_the_pipeline_stages(tmp_path):
    """jobs/bench_scale.py at a small size: every stage's outputs exist and their counts are the generator's."""
    import re

    import pyarrow.parquet as pq

    from interestrec import artifacts
    from interestrec.data.synthetic import generate

    users, per_user, items = 1500, 8, 60
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'library'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    env.pop("RAY_ADDRESS", None)
    r = subprocess.run([sys.executable, str(ROOT / "jobs/bench_scale.py"), "--users", str(users), "--events-per-user",
                        str(per_user), "--items", str(items), "--k", "4", "--out", str(out)],
                       capture_output=True, text=True, timeout=1200, cwd=ROOT, env=env)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    truth = generate(users, items, 32, 4, per_user, seed=0).events  # the job's defaults: 32 topics, 4 windows
    last = r.stdout.strip().splitlines()[-1]
    m = re.fullmatch(r"users=(\d+) events=(\d+) seconds=([\d.]+) driver_peak_rss_gib=([\d.]+) "
                     r"worker_peak_rss_gib=([\d.]+)", last)
    assert m, last
    assert int(m.group(1)) == users and int(m.group(2)) == truth.num_rows
    assert float(m.group(4)) > 0 and float(m.group(5)) > 0
    ingest = json.loads((out / "ingest" / "summary.json").read_text())
    assert ingest["rows_read"] == truth.num_rows == ingest["accepted"] + ingest["rejected"]
    assert artifacts.read_parquet(str(out / "ingest" / "events.parquet")).num_rows == ingest["accepted"]
    n_users = len(set(truth.column("user_id").to_pylist()))
    assert ingest["users"] == n_users
    assert json.loads((out / "encode" / "summary.json").read_text())["users"] == n_users
    assert pq.read_metadata(out / "cluster" / "assignments.parquet").num_rows == n_users
    assert (out / "dynamics" / "summary.json").exists() and (out / "dynamics" / "assignments.parquet").exists()
    for stage in ("ingest", "encode", "cluster", "dynamics"):
        assert re.search(rf"^{stage}\s+[\d.]+\s", r.stdout, re.M), stage


def _yaml_start_command(key: str) -> str:
    """The ``ray start`` command of cluster.yaml's ``key`` (head_/worker_start_ray_commands), as written."""
    import yaml

    cfg = yaml.safe_load((ROOT / "cluster.yaml").read_text())
    (cmd,) = [c for c in cfg[key] if "ray start" in c]
    return cmd


def test_yaml_start_command_refuses_to_start_without_a_token(tmp_path):
    """No RAY_AUTH_TOKEN and no reachable secret: the start command stops before `ray start`."""
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "ray").write_text(f"#!/bin/sh\necho started > {tmp_path / 'started'}\n")
    (fake / "ray").chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "AWS_"))}
    env.update({"PATH": f"{fake}{os.pathsep}{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
                "AWS_EC2_METADATA_DISABLED": "true", "AWS_DEFAULT_REGION": "us-west-2", "HOME": str(tmp_path),
                "RAY_HEAD_IP": "127.0.0.1"})
    for key in ("head_start_ray_commands", "worker_start_ray_commands"):
        r = subprocess.run(["bash", "-c", _yaml_start_command(key)], env=env, capture_output=True, text=True, timeout=120)
        assert r.returncode != 0, key
        assert not (tmp_path / "started").exists(), key
    ok = subprocess.run(["bash", "-c", _yaml_start_command("worker_start_ray_commands")],
                        env={**env, "RAY_AUTH_TOKEN": "x" * 64}, capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0 and (tmp_path / "started").exists(), ok.stderr  # with a token it gets to `ray start`
