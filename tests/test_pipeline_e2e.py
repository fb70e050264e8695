"""The pipeline job end to end on a small real-data copy: every stage's summary, publish, report, skipping."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow

FAST = ["--set", "graph.epochs=2", "--set", "cluster.k_grid=[3,4,5]", "--set", "evaluate.tune=false",
        "--set", "evaluate.models=[mostpop,ease,llm,fused]", "--set", "encode.also_text=false",
        "--set", "cluster.num_actors=2", "--set", "adapt.projection_epochs=2",
        "--set", "adapt.projection_max_pairs=4000", "--set", "encode.reuse_adapt_vectors=true"]


def run_pipeline(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}  # the embedded local Ray
    return subprocess.run([sys.executable, str(ROOT / "jobs/pipeline.py"), *args], capture_output=True, text=True,
                          timeout=1800, cwd=ROOT, env=env)


@pytest.fixture(scope="module")
def pipeline_out(tmp_path_factory, ml_subset):
    out = tmp_path_factory.mktemp("pipeline") / "out"
    r = run_pipeline("--data", str(ml_subset), "--out", str(out), *FAST)
    assert r.returncode == 0, r.stdout[-5000:] + r.stderr[-5000:]
    return out, r


def test_every_stage_writes_its_summary(pipeline_out):
    out, r = pipeline_out
    for stage in ("ingest", "encode", "cluster", "dynamics", "graph", "evaluate", "publish"):
        summary = json.loads((out / stage / "summary.json").read_text())
        run = summary["_run"]  # each stage really ran (timed) and recorded what it read and wrote
        assert run["seconds"] > 0 and len(run["output_hash"]) > 8 and len(run["input_hash"]) > 8, (stage, run)
    ingest = json.loads((out / "ingest" / "summary.json").read_text())
    assert ingest["rows_read"] == ingest["accepted"] + ingest["rejected"]
    models = json.loads((out / "evaluate" / "summary.json").read_text())["models"]
    assert {"mostpop", "ease", "llm", "fused"} <= set(models)
    assert models["fused"]["baseline"] is False and models["ease"]["baseline"] is True
    assert "== summary ==" in r.stdout and "quality (test, full ranking" in r.stdout  # the closing summary


def test_publish_is_versioned_with_a_manifest(pipeline_out):
    out, _ = pipeline_out
    latest = (out / "publish" / "LATEST").read_text().strip()
    manifest = json.loads((out / "publish" / latest / "manifest.json").read_text())
    assert manifest["version"] == int(latest[1:])
    assert "encode/items.parquet" in manifest["files"]
    assert all((out / "publish" / latest / f).exists() for f in manifest["files"])
    assert not list((out / "publish").glob(".tmp-*"))
    # what serving needs of the fused row: its tuned params and the seq term's item–item table
    assert len(manifest["metrics"]["fused"]["params"]["weights"]) == 4
    assert "recommend/item_item.parquet" in manifest["files"]
    from interestrec.recommend import artifacts as ra

    arts = ra.load(str(out))
    assert arts.fused_params == manifest["metrics"]["fused"]["params"]
    assert arts.item_table is not None and arts.item_table.shape == (len(arts.item_ids),) * 2 and arts.item_table.nnz > 0


def test_report_is_written_and_renders(pipeline_out, tmp_path):
    from fixtures.report import CHROMIUM, SECTIONS, render_in_chromium

    out, _ = pipeline_out
    report = out / "report.html"
    assert report.exists()
    assert "Could not render" not in report.read_text()
    if CHROMIUM:
        seen = render_in_chromium(report, tmp_path)
        assert list(seen) == list(SECTIONS)
        assert all(s["text"] > 40 and s["loaded"] == s["images"] for s in seen.values()), seen
        assert seen["lineage"]["circles"] > 0 and seen["drift"]["empty"] == 0


def test_unchanged_stages_are_skipped_and_force_redoes(pipeline_out):
    out, _ = pipeline_out
    r = run_pipeline("--out", str(out), "--stages", "encode,cluster", *FAST)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.count("skipped") == 2
    r = run_pipeline("--out", str(out), "--stages", "cluster", "--force", *FAST)
    assert r.returncode == 0 and "skipped" not in r.stdout


def test_bad_config_key_is_a_clear_error(tmp_path):
    r = run_pipeline("--out", str(tmp_path / "o"), "--stages", "ingest", "--set", "cluster.kk=3")
    assert r.returncode == 2
    assert "unknown config key 'kk'" in r.stderr and "Traceback" not in r.stderr


def test_readme_python_section_runs_on_the_published_run(pipeline_out, capsys):
    """The README's "Use it from Python" load/recommend/explain block, as written, on a real published run."""
    import re

    import interestrec

    out, _ = pipeline_out
    section = (ROOT / "README.md").read_text().split("## Use it from Python", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert len(blocks) == 2 and "interestrec.load(" in blocks[1]
    code = blocks[1].replace('"out/demo"', repr(str(out)))
    scope: dict = {}
    exec(compile(code, "README.md", "exec"), scope)  # noqa: S102 — the README's own text, run as a user would
    top, new_user = scope["top"], scope["new_user"]
    assert len(top["items"]) == 5 and top["user_id"] == 1 and top["version"] is not None
    assert all(i["explanation"]["cluster_description"] is not None for i in top["items"])
    service = scope["service"]
    assert isinstance(service, interestrec.RecommenderService)
    seen = set(service.model.history[service.user_index(1)].tolist())  # exclude_seen is on by default
    assert not seen & set(service.item_indices([i["item_id"] for i in top["items"]]).tolist())
    assert len(new_user["items"]) == 5 and {1, 50}.isdisjoint({i["item_id"] for i in new_user["items"]})
    printed = capsys.readouterr().out.splitlines()
    assert len(printed) == 6  # a line per recommended item, then the new user's titles
