"""Two-node tier for the cluster operations: k-means recovery across nodes, and cluster.yaml's start commands.

Both tests run real ``ray start`` nodes on this machine (each with its own ``--temp-dir``), token
authentication on, and a real S3-compatible server (moto) configured only through the standard AWS
environment variables of the nodes, as on a cluster whose nodes have object-storage credentials.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

from fixtures.cluster import ROOT, LocalCluster
from fixtures.ports import free_port
from fixtures.s3 import BUCKET, get_json, put, s3_env, s3fs  # noqa: F401 — s3_env is a fixture

pytestmark = pytest.mark.multinode

# The job driver of the kill test: both fits pin rank 0 to the worker node and rank 1 to the head, so
# the group spans the nodes and the checkpoints are written from the worker node to S3.
KILL_DRIVER = r'''
import json, os, signal, sys, threading, time
import numpy as np
import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy
from ray.util.state import get_actor
from interestrec import artifacts
from interestrec.cluster import DistributedKMeans

ckpt, out = sys.argv[1], sys.argv[2]
ray.init()
head = ray.get_runtime_context().get_node_id()
(second,) = [n["NodeID"] for n in ray.nodes() if n["Alive"] and n["NodeID"] != head]
pin = [NodeAffinitySchedulingStrategy(second, soft=False), NodeAffinitySchedulingStrategy(head, soft=False)]
x = np.random.default_rng(0).random((60000, 32), dtype=np.float32)  # no structure: many slow Lloyd iterations
kw = dict(seed=0, tol=0, max_iter=40)
ref = DistributedKMeans(2, num_cpus=0.5, scheduling=pin).fit(x, 64, **kw)
km = DistributedKMeans(2, num_cpus=0.5, scheduling=pin, checkpoint_dir=ckpt, grace_s=20)
res = {}
th = threading.Thread(target=lambda: res.update(r=km.fit(x, 64, **kw)))
th.start()
state = artifacts.join(ckpt, "state.json")
deadline = time.time() + 300
killed_at = None
while time.time() < deadline and th.is_alive():
    try:
        killed_at = artifacts.read_json(state)["n_iter"]
    except (OSError, ValueError):
        killed_at = None
    if killed_at is not None and killed_at >= 3:
        break
    time.sleep(0.01)
victim = get_actor(km.actors[0]._actor_id.hex())
os.kill(victim.pid, signal.SIGKILL)  # the worker process of shard 0, on the second node
t_kill = time.time()
th.join(timeout=600)
r = res["r"]
np.savez(out, ref_centroids=ref.centroids, ref_labels=ref.labels, centroids=r.centroids, labels=r.labels)
print("RESULT " + json.dumps({
    "head": head, "second": second, "victim_node": victim.node_id, "killed_at": killed_at,
    "restarts": km.restarts, "n_iter": r.n_iter, "ref_n_iter": ref.n_iter, "inertia": r.inertia,
    "ref_inertia": ref.inertia, "history_equal": r.history == ref.history,
    "kill_to_result_s": time.time() - t_kill}), flush=True)
'''


@pytest.fixture
def s3_cluster(s3_env, tmp_path, monkeypatch):  # noqa: F811 — the imported fixture
    """Head (1 CPU) + worker (2 CPUs), every node with the S3 server's AWS_* variables."""
    for k, v in s3_env.items():
        monkeypatch.setenv(k, v)
    c = LocalCluster(tmp_path, head_cpus=1)
    try:
        c.add_worker(2, {})
        yield c
    finally:
        c.stop()


def test_kmeans_shard0_killed_on_the_second_node_resumes_from_s3(s3_cluster, s3_env, tmp_path):  # noqa: F811
    fs = s3fs(s3_env)
    fs.create_dir(BUCKET)
    script, out = tmp_path / "kill_driver.py", tmp_path / "result.npz"
    script.write_text(KILL_DRIVER)
    t0 = time.perf_counter()
    r = s3_cluster.submit("python", str(script), f"s3://{BUCKET}/kmeans-ckpt", str(out))
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-4000:]
    (line,) = [ln for ln in r.stdout.splitlines() if ln.startswith("RESULT ")]
    res = json.loads(line[len("RESULT "):])
    print(f"\nk-means kill on the second node: {res}; job {time.perf_counter() - t0:.1f} s")
    assert res["victim_node"] == res["second"] != res["head"]  # shard 0 really ran on the other node
    assert 3 <= res["killed_at"] < res["ref_n_iter"] and res["restarts"] == 1
    assert res["n_iter"] == res["ref_n_iter"] == 40
    assert res["inertia"] == res["ref_inertia"] and res["history_equal"]
    z = np.load(out)
    np.testing.assert_array_equal(z["centroids"], z["ref_centroids"])
    np.testing.assert_array_equal(z["labels"], z["ref_labels"])
    state = get_json(fs, "kmeans-ckpt/state.json")  # the checkpoint lives in object storage, not on a node
    assert state["n_iter"] == 40 and state["done"]


def _yaml_command(key: str) -> str:
    import yaml

    cfg = yaml.safe_load((ROOT / "cluster.yaml").read_text())
    (cmd,) = [c for c in cfg[key] if "ray start" in c]
    return cmd


def _sub(pattern: str, repl: str, text: str) -> str:
    out, n = re.subn(pattern, repl, text)
    assert n == 1, f"cluster.yaml changed: no single match for {pattern!r} in {text!r}"
    return out


class YamlCluster(LocalCluster):
    """A head and a worker started by cluster.yaml's own ``ray start`` commands, run with bash.

    Changed for one machine only: the GCS port (6379 may be taken) and the dashboard port are free ports,
    each node gets its own ``--temp-dir`` and agent ports, ``--block`` keeps each node in its own process
    group, the head has 0 CPUs as the yaml's head node type says, and ``--autoscaling-config`` (a file
    ``ray up`` writes on the head) is dropped. The token comes from the Secrets Manager secret, exactly as
    on the cluster: neither node has RAY_AUTH_TOKEN in its environment.
    """

    def __init__(self, tmp: Path, node_env: dict, token: str):
        self.port, self.dash = free_port(), free_port()
        self.node_env = node_env
        self.env = {**node_env, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token}  # the user's shell
        self.procs: list[subprocess.Popen] = []
        self.temp_dirs: dict[str, Path] = {}
        self.logs = tmp
        self.address = f"127.0.0.1:{self.port}"
        self.dashboard = f"http://127.0.0.1:{self.dash}"
        head = _sub(r"--port=6379", f"--port={self.port}", _yaml_command("head_start_ray_commands"))
        head = _sub(r" --autoscaling-config=\S+", "", head)
        worker = _sub(r":6379\b", f":{self.port}", _yaml_command("worker_start_ray_commands"))
        self.commands = {"head": head + f" --dashboard-port={self.dash} --num-cpus=0",
                         "worker1": worker + " --num-cpus=2"}
        try:
            self._bash("head")
            self.wait_nodes(1)
            self._bash("worker1")
            self.wait_nodes(2)
        except BaseException:
            self.stop()
            raise

    def _bash(self, name: str) -> None:
        ports = " ".join(f"--{flag}={free_port()}" for flag in ("dashboard-agent-listen-port", "dashboard-agent-grpc-port",
                                                                 "runtime-env-agent-port", "metrics-export-port"))
        temp = self.temp_dirs[name] = Path(tempfile.mkdtemp(prefix=f"ray-{name}-"))
        cmd = f"{self.commands[name]} --block --disable-usage-stats --temp-dir={temp} {ports}"
        log = open(self.logs / f"{name}.log", "w")  # noqa: SIM115 - closed with the process
        self.procs.append(subprocess.Popen(["bash", "-c", cmd], env={**self.node_env, "RAY_HEAD_IP": "127.0.0.1"},
                                           stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=self.logs))


STAGES = ("ingest", "adapt", "encode", "cluster", "dynamics", "graph", "evaluate", "publish")


def test_cluster_yaml_nodes_run_the_submitted_pipeline_into_s3(s3_env, tmp_path, ml_subset):  # noqa: F811
    """cluster.yaml's head and worker start commands as a two-node cluster; the whole pipeline through
    `ray job submit`, reading its input from and writing its output to the S3 server."""
    import boto3

    token = secrets.token_hex(32)
    home = tmp_path / "home"  # no ~/.ray/auth_token: the token can only come from the secret
    home.mkdir()
    node_env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "AWS_", "INTERESTREC_"))}
    node_env.update(s3_env, AWS_DEFAULT_REGION=s3_env["AWS_REGION"], HOME=str(home), RAY_USAGE_STATS_ENABLED="0",
                    PATH=f"{Path(sys.executable).parent}{os.pathsep}{node_env.get('PATH', '')}")
    sm = boto3.client("secretsmanager", endpoint_url=s3_env["AWS_ENDPOINT_URL"], region_name=s3_env["AWS_REGION"],
                      aws_access_key_id="testing", aws_secret_access_key="testing")
    sm.create_secret(Name="interestrec/ray-auth-token", SecretString=token)  # the yaml's default secret name
    fs = s3fs(s3_env)
    fs.create_dir(BUCKET)
    for name in ("ratings.csv", "tags.csv", "movies.csv"):
        put(fs, f"yaml-ml/{name}", (ml_subset / name).read_bytes())

    t0 = time.perf_counter()
    cluster = YamlCluster(tmp_path, node_env, token)
    try:
        t_up = time.perf_counter() - t0
        denied = cluster.ray("job", "list", "--address", cluster.dashboard, env=node_env, timeout=120)
        assert denied.returncode != 0 and "token" in (denied.stdout + denied.stderr).lower()  # open port, closed API
        t1 = time.perf_counter()
        r = cluster.submit("python", "jobs/pipeline.py", "--data", f"s3://{BUCKET}/yaml-ml",
                           "--out", f"s3://{BUCKET}/yaml-run",
                           "--set", "graph.epochs=2", "--set", "cluster.k_grid=[3,4,5]", "--set", "evaluate.tune=false",
                           "--set", "evaluate.models=[mostpop,ease,llm,fused]", "--set", "encode.also_text=false")
        t_job = time.perf_counter() - t1
        assert r.returncode == 0, r.stdout[-5000:] + r.stderr[-5000:]
        assert re.search(r"Job '[^']+' succeeded", r.stdout + r.stderr), r.stdout[-3000:]
        out = r.stdout.splitlines()
        start = out.index("== summary ==")
        end = next(i for i in range(start, len(out)) if out[i].startswith("total"))
        table = out[start + 1:end + 1]  # the run's closing stage table: name, seconds, key numbers
        assert [ln.split()[0] for ln in table[1:-1]] == list(STAGES), table
        print(f"\ncluster.yaml nodes up in {t_up:.1f} s; job {t_job:.1f} s\n" + "\n".join(table))
    finally:
        cluster.stop()
    for stage in STAGES:
        summary = get_json(fs, f"yaml-run/{stage}/summary.json")
        assert summary["_run"]["seconds"] >= 0, stage
    import pyarrow.fs as pafs

    keys = {i.path.split("/yaml-run/", 1)[1] for i in fs.get_file_info(pafs.FileSelector(f"{BUCKET}/yaml-run", recursive=True))
            if i.type == pafs.FileType.File}
    # events and (pool-mode) users are directory datasets, committed by their manifest
    assert {"ingest/events.parquet/_manifest.json", "encode/users.parquet/_manifest.json", "cluster/centroids.npy",
            "cluster/assignments.parquet"} <= keys, sorted(keys)
    assert any(k.startswith("publish/v") and k.endswith("manifest.json") for k in keys), sorted(keys)
