"""Publish serves only what it verified: every copy read back against its stage's checksums and parsed, a
damaged file fails the publish naming it (``LATEST`` unchanged, no temporary directory left), stale
temporaries of a killed publish are removed, and the version's manifest records every file's checksum.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from fixtures.artifacts import make_artifacts
from fixtures.s3 import s3_env  # noqa: F401  (the S3 server fixture)
from interestrec import artifacts

STAGES = ("ingest", "encode", "cluster", "dynamics", "graph")


def _pipeline_output(out: Path) -> Path:
    """A small output with every served stage, each with a summary and the checksum manifest a run writes."""
    from interestrec import verify

    make_artifacts(out, n_users=20, n_items=60)
    artifacts.write_safetensors(out / "graph" / "model.safetensors", {"w": np.arange(64, dtype=np.float32).reshape(8, 8)})
    artifacts.write_json(out / "graph" / "model.json", {"layers": 2, "dim": 8, "note": "x" * 200})
    for stage in STAGES:
        manifest = verify.write_stage_manifest(str(out / stage))
        artifacts.write_json(out / stage / "summary.json", {"_run": {"output_hash": verify.manifest_hash(manifest)}})
    artifacts.write_json(out / "evaluate" / "summary.json", {"models": {"fused": {"ndcg@10": 0.1, "params": {}}}})
    return out


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@pytest.fixture
def published(tmp_path) -> Path:
    from interestrec.publish import publish
    from interestrec.stages import StageContext

    out = _pipeline_output(tmp_path / "out")
    assert publish(StageContext(out=str(out)))["version"] == 1
    return out


def test_publish_records_and_matches_every_checksum(published):
    from interestrec import verify

    v1 = published / "publish" / "v1"
    manifest = json.loads((v1 / "manifest.json").read_text())
    sums = manifest["checksums"]
    assert sums["algorithm"] == "sha256"
    assert {"ingest/windows.parquet", "graph/model.safetensors", "graph/model.json", "cluster/centroids.npy",
            "recommend/item_item.parquet"} <= set(sums["files"])
    assert verify.damage(str(v1), sums) == []  # the version checks against its own manifest
    stage = json.loads((published / "cluster" / "_files.json").read_text())["files"]["centroids.npy"]
    assert sums["files"]["cluster/centroids.npy"] == stage  # the copy is byte for byte what the stage wrote
    assert not list((published / "publish").glob(".tmp-*"))


@pytest.mark.parametrize("rel", ["ingest/windows.parquet", "graph/model.safetensors", "graph/model.json",
                                 "cluster/centroids.npy"])
@pytest.mark.parametrize("with_manifest", [True, False], ids=["checksums", "parse-only"])
def test_a_truncated_served_file_fails_publish_naming_it(published, rel, with_manifest):
    from interestrec.integrity import ArtifactError
    from interestrec.stages import StageContext, StageError, run_stage

    _truncate(published / rel)
    if not with_manifest:  # outputs written before checksums were kept: the parse still catches it
        (published / rel.split("/")[0] / "_files.json").unlink()
    with pytest.raises(StageError, match=re.escape(rel)) as err:
        run_stage(StageContext(out=str(published)), "publish", force=True)
    assert isinstance(err.value.__cause__, ArtifactError)
    assert str(published / rel) in str(err.value)  # the source file, by its full path
    assert (published / "publish" / "LATEST").read_text().strip() == "v1"
    assert sorted(p.name for p in (published / "publish").iterdir()) == ["LATEST", "v1"]  # no .tmp-v*, no v2


def test_a_changed_file_of_the_same_size_fails_on_its_checksum(published):
    from interestrec.integrity import ArtifactError
    from interestrec.publish import publish
    from interestrec.stages import StageContext

    path = published / "graph" / "model.json"
    text = path.read_text()
    path.write_text(text.replace('"layers": 2', '"layers": 3'))  # same size, still valid JSON
    with pytest.raises(ArtifactError, match=r"model\.json: sha256 differs"):
        publish(StageContext(out=str(published)))
    assert (published / "publish" / "LATEST").read_text().strip() == "v1"


def test_a_dataset_without_its_manifest_or_a_part_fails(tmp_path):
    from interestrec import verify
    from interestrec.integrity import ArtifactError
    from interestrec.publish import publish
    from interestrec.stages import StageContext

    out = _pipeline_output(tmp_path / "out")
    events = artifacts.read_parquet(out / "ingest" / "events.parquet")
    (out / "ingest" / "events.parquet").unlink()
    half = events.num_rows // 2
    artifacts.write_parquet(out / "ingest" / "events.parquet" / "part-00000.parquet", events.slice(0, half))
    artifacts.write_parquet(out / "ingest" / "events.parquet" / "part-00001.parquet", events.slice(half))
    artifacts.write_manifest(out / "ingest" / "events.parquet", ["part-00000.parquet", "part-00001.parquet"], events.num_rows)
    verify.write_stage_manifest(str(out / "ingest"))
    (out / "ingest" / "events.parquet" / "_manifest.json").unlink()
    with pytest.raises(ArtifactError, match=r"ingest/events\.parquet/_manifest\.json: missing, but the ingest stage wrote it"):
        publish(StageContext(out=str(out)))
    (out / "ingest" / "_files.json").unlink()  # no checksums: the dataset check still refuses it
    with pytest.raises(ArtifactError, match=r"events\.parquet: incomplete dataset"):
        publish(StageContext(out=str(out)))
    assert not (out / "publish" / "LATEST").exists() and not list((out / "publish").glob(".tmp-*"))


def test_stale_temporaries_of_a_killed_publish_are_removed(published, capsys):
    from interestrec.publish import publish
    from interestrec.stages import StageContext

    stale = published / "publish" / ".tmp-v2-deadbeef"
    (stale / "ingest").mkdir(parents=True)
    (stale / "ingest" / "events.parquet").write_bytes(b"x" * 4096)
    assert publish(StageContext(out=str(published)))["version"] == 2
    assert not stale.exists() and not list((published / "publish").glob(".tmp-*"))
    assert "removed .tmp-v2-deadbeef" in capsys.readouterr().out
    assert (published / "publish" / "LATEST").read_text().strip() == "v2"


def test_publish_run_records_its_version_only_and_skips_when_intact(published, capsys):
    from interestrec.stages import StageContext, run_stage

    ctx = StageContext(out=str(published))
    first = run_stage(ctx, "publish", force=True)
    files = json.loads((published / "publish" / "_files.json").read_text())["files"]
    assert first["version"] == 2 and files and all(rel.startswith("v2/") for rel in files)
    assert run_stage(ctx, "publish")["version"] == 2  # unchanged: skipped
    assert "unchanged inputs and config, skipped (outputs match their checksums" in capsys.readouterr().out
    (published / "publish" / "LATEST").write_text("v1\n")  # a rollback by hand is not damage
    assert run_stage(ctx, "publish")["version"] == 2
    _truncate(published / "publish" / "v2" / "cluster" / "centroids.npy")
    assert run_stage(ctx, "publish")["version"] == 3  # damaged: published again
    assert "v2/cluster/centroids.npy" in capsys.readouterr().out


@pytest.mark.slow
def test_publish_to_s3_checks_copies_and_removes_a_partial_version(s3_env, tmp_path, monkeypatch):  # noqa: F811
    """The same on an object store (a local S3 server): no directory rename there, so the version is assembled
    in place; a failure removes it, and a partial version a killed publish left above LATEST is removed."""
    import uuid

    import pyarrow.fs as pafs

    from fixtures.s3 import BUCKET, s3fs
    from interestrec.integrity import ArtifactError
    from interestrec.publish import publish
    from interestrec.stages import StageContext

    for k, v in s3_env.items():
        monkeypatch.setenv(k, v)
    fs = s3fs(s3_env)
    fs.create_dir(BUCKET)
    root = f"{BUCKET}/verify-{uuid.uuid4().hex[:8]}/out"
    pafs.copy_files(str(_pipeline_output(tmp_path / "out")), root, source_filesystem=pafs.LocalFileSystem(),
                    destination_filesystem=fs)
    out = f"s3://{root}"
    assert publish(StageContext(out=out))["version"] == 1
    sums = artifacts.read_json(f"{out}/publish/v1/manifest.json")["checksums"]["files"]
    assert sums["graph/model.safetensors"] == artifacts.read_json(f"{out}/graph/_files.json")["files"]["model.safetensors"]
    model = artifacts.read_bytes(f"{out}/graph/model.safetensors")
    with fs.open_output_stream(f"{root}/graph/model.safetensors") as f:
        f.write(model[: len(model) // 2])
    with pytest.raises(ArtifactError, match=re.escape(f"{out}/graph/model.safetensors")):
        publish(StageContext(out=out))
    names = lambda: sorted(i.base_name for i in fs.get_file_info(pafs.FileSelector(f"{root}/publish")))  # noqa: E731
    assert names() == ["LATEST", "v1"] and artifacts.read_bytes(f"{out}/publish/LATEST") == b"v1\n"
    with fs.open_output_stream(f"{root}/graph/model.safetensors") as f:
        f.write(model)
    with fs.open_output_stream(f"{root}/publish/v7/ingest/events.parquet") as f:  # a killed publish's leftovers
        f.write(b"partial")
    assert publish(StageContext(out=out))["version"] == 2
    assert names() == ["LATEST", "v1", "v2"]
