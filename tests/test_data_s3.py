"""The pipeline reads its data from and writes its output to S3: a real S3-compatible server on 127.0.0.1.

The server (moto) is started here; the job is configured only through the standard AWS environment
variables, as on a cluster.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow
BUCKET = "interestrec-test"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def s3_env():
    exe = Path(sys.executable).parent / "moto_server"
    if not exe.exists():
        pytest.skip("moto_server not installed (pip install 'moto[server]')")
    port = free_port()
    proc = subprocess.Popen([str(exe), "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            urllib.request.urlopen(url, timeout=1)
            break
        except OSError:
            time.sleep(0.2)
    env = {"AWS_ENDPOINT_URL": url, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1"}
    yield env
    proc.terminate()
    proc.wait(timeout=30)


def s3fs(env):
    import pyarrow.fs as pafs

    return pafs.S3FileSystem(endpoint_override=env["AWS_ENDPOINT_URL"], access_key=env["AWS_ACCESS_KEY_ID"],
                             secret_key=env["AWS_SECRET_ACCESS_KEY"], region=env["AWS_REGION"], allow_bucket_creation=True)


def put(fs, key: str, data: bytes) -> None:
    with fs.open_output_stream(f"{BUCKET}/{key}") as f:
        f.write(data)


def get_json(fs, key: str) -> dict:
    with fs.open_input_stream(f"{BUCKET}/{key}") as f:
        return json.loads(f.read())


def run_pipeline(env: dict, *args: str) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"} | env
    return subprocess.run([sys.executable, str(ROOT / "jobs/pipeline.py"), *args], capture_output=True, text=True,
                          timeout=1800, cwd=ROOT, env=full)


def test_pipeline_reads_and_writes_s3(s3_env, ml_subset):
    fs = s3fs(s3_env)
    fs.create_dir(BUCKET)
    records = 0
    for name in ("ratings.csv", "tags.csv", "movies.csv"):
        data = (ml_subset / name).read_bytes()
        records += data.count(b"\n") - 1
        put(fs, f"ml/{name}", data)
    args = ["--data", f"s3://{BUCKET}/ml", "--out", f"s3://{BUCKET}/run", "--stages", "ingest,encode",
            "--set", "encode.also_text=false"]
    r = run_pipeline(s3_env, *args)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-4000:]
    ingest = get_json(fs, "run/ingest/summary.json")
    assert ingest["format"] == "ml-latest" and ingest["rows_read"] == records and ingest["rejected"] == 0
    assert ingest["data"] == f"s3://{BUCKET}/ml"
    encode = get_json(fs, "run/encode/summary.json")
    assert encode["_run"]["seconds"] > 0
    import pyarrow.fs as pafs

    names = {i.path.rsplit("/", 1)[-1] for i in fs.get_file_info(pafs.FileSelector(f"{BUCKET}/run/ingest", recursive=True))}
    assert {"events.parquet", "items.parquet", "windows.parquet", "users.parquet"} <= names

    r = run_pipeline(s3_env, *args)  # unchanged remote inputs: both stages skipped
    assert r.returncode == 0 and "ingest: unchanged inputs and config, skipped" in r.stdout, r.stdout[-3000:]

    ratings = (ml_subset / "ratings.csv").read_bytes()
    put(fs, "ml/ratings.csv", ratings + b"1,1,4.0,1500000000\n")  # a changed remote file is noticed
    r = run_pipeline(s3_env, *args, "--stages", "ingest")
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-4000:]
    assert "ingest: start" in r.stdout
    assert get_json(fs, "run/ingest/summary.json")["rows_read"] == records + 1
