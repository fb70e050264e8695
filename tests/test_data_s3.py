"""The pipeline reads its data from and writes its output to S3: a real S3-compatible server on 127.0.0.1.

The server (moto) is ``fixtures.s3``'s ``s3_env``; the job is configured only through the standard AWS
environment variables, as on a cluster.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from fixtures.s3 import BUCKET, get_json, put, s3_env, s3fs  # noqa: F401 — s3_env is a fixture

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def run_pipeline(env: dict, *args: str) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"} | env
    return subprocess.run([sys.executable, str(ROOT / "jobs/pipeline.py"), *args], capture_output=True, text=True,
                          timeout=1800, cwd=ROOT, env=full)


def test_pipeline_reads_and_writes_s3(s3_env, ml_subset):  # noqa: F811 — the imported fixture
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
