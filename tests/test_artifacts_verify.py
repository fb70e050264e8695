"""Stage outputs are checked before they are skipped: each run records every output file's size and checksum
(``<stage>/_files.json``), a skip re-checks them and a damaged output is run again; readers name the file
they cannot parse.
"""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from interestrec import artifacts


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@pytest.mark.parametrize("write,read,name", [
    (lambda p: artifacts.write_npy(p, np.ones((64, 8), np.float32)), artifacts.read_npy, "c.npy"),
    (lambda p: artifacts.write_parquet(p, pa.table({"x": list(range(500))})), artifacts.read_parquet, "t.parquet"),
    (lambda p: artifacts.write_safetensors(p, {"w": np.ones((16, 16), np.float32)}), artifacts.read_safetensors, "m.safetensors"),
    (lambda p: artifacts.write_json(p, {"a": list(range(50))}), artifacts.read_json, "m.json"),
])
def test_a_truncated_artifact_is_an_error_naming_it(tmp_path, write, read, name):
    from interestrec.integrity import ArtifactError

    path = tmp_path / "stage" / name
    write(path)
    read(path)
    _truncate(path)
    with pytest.raises(ArtifactError, match=str(path)):
        read(path)
    with pytest.raises(ValueError):  # still a ValueError for callers that catch that
        read(path)


def test_manifest_sizes_checksums_and_what_damage_reports(tmp_path):
    from interestrec import verify

    d = tmp_path / "encode"
    artifacts.write_parquet(d / "users.parquet" / "part-00000.parquet", pa.table({"x": [1, 2, 3]}))
    artifacts.write_manifest(d / "users.parquet", ["part-00000.parquet"], 3)
    (d / "notes.txt").write_text("written without the helpers")  # not recorded: read for its checksum
    (d / ".users.parquet.tmp123").write_bytes(b"a writer's temporary")
    artifacts.write_json(d / "summary.json", {"n": 1})
    m = verify.write_stage_manifest(str(d))
    assert set(m["files"]) == {"users.parquet/part-00000.parquet", "users.parquet/_manifest.json", "notes.txt"}
    import hashlib

    want = hashlib.sha256(b"written without the helpers").hexdigest()
    assert m["files"]["notes.txt"] == {"size": 27, "sha256": want}
    part = (d / "users.parquet" / "part-00000.parquet").read_bytes()
    assert m["files"]["users.parquet/part-00000.parquet"]["sha256"] == hashlib.sha256(part).hexdigest()
    assert verify.read_stage_manifest(str(d)) == m and verify.damage(str(d), m) == []
    (d / "notes.txt").write_text("Written without the helpers")  # same size, other bytes
    assert verify.damage(str(d), m) == ["notes.txt: sha256 differs from the one written"]
    (d / "users.parquet" / "_manifest.json").unlink()
    _truncate(d / "users.parquet" / "part-00000.parquet")
    assert sorted(verify.damage(str(d), m)) == [
        "users.parquet/_manifest.json: missing",
        f"users.parquet/part-00000.parquet: {len(part) // 2} bytes, {len(part)} written"]
    (d / "_files.json").write_text(json.dumps({"algorithm": "md5", "files": {}}))
    from interestrec.integrity import ArtifactError

    with pytest.raises(ArtifactError, match="_files.json: not a sha256 file manifest"):
        verify.read_stage_manifest(str(d))


def test_a_written_file_is_not_read_back_for_its_checksum(tmp_path, monkeypatch):
    from interestrec import verify
    from interestrec.integrity import recording

    read = []
    monkeypatch.setattr(verify, "checksum", lambda fs, p: read.append(p) or (0, ""))
    artifacts.write_npy(tmp_path / "s" / "b.npy", np.zeros(10))  # outside a stage run: not recorded
    with recording():  # as run_stage does around a stage
        artifacts.write_npy(tmp_path / "s" / "a.npy", np.zeros(10))
        m = verify.build_manifest(str(tmp_path / "s"))
        assert read == [str(tmp_path / "s" / "b.npy")]
        assert m["files"]["a.npy"]["size"] == (tmp_path / "s" / "a.npy").stat().st_size
        buf = io.BytesIO()
        np.save(buf, np.ones(10))
        time.sleep(0.05)  # past the filesystem's timestamp granularity
        (tmp_path / "s" / "a.npy").write_bytes(buf.getvalue())  # rewritten behind the helpers' back: read again
        verify.build_manifest(str(tmp_path / "s"), include=["a.npy"])
        assert read[1:] == [str(tmp_path / "s" / "a.npy")]


def test_ingest_output_damaged_is_run_again_and_a_healthy_one_skipped(ray_local, ml_subset, tmp_path, capsys):
    from interestrec.stages import StageContext, run_stage

    ctx = StageContext(out=str(tmp_path / "out"), data=str(ml_subset))
    first = run_stage(ctx, "ingest")
    ingest = tmp_path / "out" / "ingest"
    listed = json.loads((ingest / "_files.json").read_text())["files"]
    assert "events.parquet/_manifest.json" in listed and "windows.parquet" in listed and "summary.json" not in listed
    capsys.readouterr()
    assert run_stage(ctx, "ingest") == first  # healthy: skipped, the same summary
    assert "unchanged inputs and config, skipped (outputs match their checksums" in capsys.readouterr().out
    rows = artifacts.read_parquet(ingest / "events.parquet").num_rows
    parts = sorted((ingest / "events.parquet").glob("part-*.parquet"))
    (ingest / "events.parquet" / "_manifest.json").unlink()
    _truncate(parts[0])
    again = run_stage(ctx, "ingest")
    log = capsys.readouterr().out
    assert "skipped" not in log and "running it again" in log
    assert "events.parquet/_manifest.json: missing" in log and f"events.parquet/{parts[0].name}:" in log
    assert again["_run"]["output_hash"] == first["_run"]["output_hash"]  # the same content, rewritten whole
    assert artifacts.read_parquet(ingest / "events.parquet").num_rows == rows


def test_outputs_from_before_checksums_are_adopted_when_they_still_hash_the_same(tmp_path):
    from interestrec import verify

    d = tmp_path / "cluster"
    artifacts.write_npy(d / "centroids.npy", np.eye(3, dtype=np.float32))
    old_hash = artifacts.hash_files([str(d)])  # what run_stage recorded before _files.json existed
    assert verify.stage_damage(str(d), {"output_hash": old_hash}) == []
    assert (d / "_files.json").exists()  # adopted: checked by checksum from now on
    (d / "_files.json").unlink()
    _truncate(d / "centroids.npy")
    assert verify.stage_damage(str(d), {"output_hash": old_hash}) == [
        "no _files.json, and the files no longer hash to the recorded output_hash"]


def test_a_malformed_checksum_manifest_is_damage_not_a_crash(tmp_path):
    from interestrec import verify

    d = tmp_path / "graph"
    artifacts.write_json(d / "model.json", {"dim": 8})
    (d / "_files.json").write_text('{"algorithm": "sha256", "files": {"model.json": {"size": 1')  # cut short
    why = verify.stage_damage(str(d), {"output_hash": "x"})
    assert len(why) == 1 and str(d / "_files.json") in why[0] and "damaged or truncated" in why[0]
