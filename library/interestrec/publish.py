"""The ``publish`` stage: a versioned, self-describing artifact directory for serving.

``DIR/publish/v<N>/`` holds copies of the files the Serve app reads plus ``manifest.json`` (version,
creation time, per-stage output hashes, config, headline metrics). It is assembled in a temporary
directory and renamed into place, so a reader never sees a half-published version; ``DIR/publish/LATEST``
names the newest version. Works for local paths and any pyarrow filesystem URI: object stores (S3, GCS)
have no directory rename, so there the version is written in place and ``manifest.json``, written last,
marks it complete (``LATEST`` is updated only after it).
"""

from __future__ import annotations

import dataclasses
import json
import time
import uuid

from interestrec import artifacts
from interestrec.stages import StageContext

# stage -> files (relative to the stage dir) the serving side needs; missing optional ones are skipped
SERVED_FILES: dict[str, tuple[str, ...]] = {
    "ingest": ("events.parquet", "items.parquet", "windows.parquet", "ids/users.parquet", "ids/items.parquet"),
    "encode": ("items.parquet", "users.parquet"),
    "cluster": ("centroids.npy", "assignments.parquet"),
    "dynamics": ("clusters.json", "lineage.json"),
    "graph": ("users.parquet", "items.parquet", "model.safetensors", "model.json"),
    "evaluate": (),
}


def next_version(publish_dir: str) -> int:
    """1 + the highest ``v<N>`` already under ``publish_dir`` (1 when none)."""
    import pyarrow.fs as pafs

    fs, root = artifacts._fs_and_path(publish_dir)
    if fs.get_file_info(root).type == pafs.FileType.NotFound:
        return 1
    versions = [
        int(i.base_name[1:])
        for i in fs.get_file_info(pafs.FileSelector(root))
        if i.type == pafs.FileType.Directory and i.base_name.startswith("v") and i.base_name[1:].isdigit()
    ]
    return max(versions, default=0) + 1


def publish(ctx: StageContext) -> dict:
    """Copy served artifacts into a new version directory and write its manifest atomically."""
    import pyarrow.fs as pafs

    publish_dir = ctx.stage_dir("publish")
    version = next_version(publish_dir)
    fs, root = artifacts._fs_and_path(publish_dir)
    final = f"{root}/v{version}"
    renames = isinstance(fs, pafs.LocalFileSystem)  # object stores cannot rename a directory
    tmp = f"{root}/.tmp-v{version}-{uuid.uuid4().hex[:8]}" if renames else final
    fs.create_dir(tmp, recursive=True)
    stages, metrics, files = {}, {}, []
    for stage, names in SERVED_FILES.items():
        summary_path = artifacts.join(ctx.stage_dir(stage), "summary.json")
        if not artifacts.exists(summary_path):
            continue
        summary = artifacts.read_json(summary_path)
        stages[stage] = {"output_hash": summary.get("_run", {}).get("output_hash"), "seconds": summary.get("_run", {}).get("seconds")}
        if stage == "evaluate":
            metrics = {m: {k: v for k, v in row.items() if k in ("ndcg@10", "hr@10", "recall@20", "mrr", "params")} for m, row in summary.get("models", {}).items()}
        for name in names:
            src_fs, src = artifacts._fs_and_path(artifacts.join(ctx.stage_dir(stage), name))
            if src_fs.get_file_info(src).type == pafs.FileType.NotFound:
                continue
            is_dir = src_fs.get_file_info(src).type == pafs.FileType.Directory  # a directory dataset (parts + manifest)
            fs.create_dir(f"{tmp}/{stage}/{name}" if is_dir else f"{tmp}/{stage}/{name}".rsplit("/", 1)[0], recursive=True)
            pafs.copy_files(src, f"{tmp}/{stage}/{name}", source_filesystem=src_fs, destination_filesystem=fs)
            files.append(f"{stage}/{name}")
    files.append(_write_item_table(ctx, tmp, (metrics.get("fused") or {}).get("params") or {}))
    manifest = {
        "version": version,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "stages": stages,
        "files": files,
        "metrics": metrics,
        "config": dataclasses.asdict(ctx.config),
    }
    with fs.open_output_stream(f"{tmp}/manifest.json") as f:  # the rename (object stores: the manifest) publishes it
        f.write((json.dumps(manifest, indent=2, default=str) + "\n").encode())
    if renames:
        fs.move(tmp, final)
    artifacts.write_bytes_atomic(artifacts.join(publish_dir, "LATEST"), f"v{version}\n".encode())
    ctx.log(f"publish: v{version} with {len(files)} files")
    return {"version": version, "path": artifacts.join(publish_dir, f"v{version}"), "files": len(files), "stages": sorted(stages)}


def _write_item_table(ctx: StageContext, tmp: str, fused_params: dict) -> str:
    """Fit the fused recommender's item–item table on every interaction of the version being assembled
    (its ``ingest/events.parquet``, never an earlier version's) with this evaluation's tuned ``lam`` /
    ``neighbours`` (``fused_params``), into that version; returns its relative path."""
    from interestrec.recommend import artifacts as ra
    from interestrec.recommend.fused import FusedParams
    from interestrec.recommend.itemitem import TABLE_FILE, table_from_events, write_table

    version_dir = artifacts.join(ctx.stage_dir("publish"), tmp.rsplit("/", 1)[1])
    arts = ra.load(version_dir)  # no manifest and no publish/ inside it yet: reads exactly the files being published
    params = FusedParams.from_params(fused_params)
    table = table_from_events(arts.ev_user, arts.ev_item, len(arts.user_ids), len(arts.item_ids),
                              params.lam, params.neighbours, item_vecs=arts.item_vecs, beta=params.table_beta)
    write_table(artifacts.join(version_dir, TABLE_FILE), table, arts.item_ids)
    ctx.log(f"publish: item–item table, {table.nnz} entries over {len(arts.item_ids)} items")
    return TABLE_FILE


def latest_version_dir(out: str) -> str:
    """Path of the newest published version under pipeline output ``out``."""
    publish_dir = artifacts.join(out, "publish")
    name = artifacts.read_bytes(artifacts.join(publish_dir, "LATEST")).decode().strip()
    return artifacts.join(publish_dir, name)


run = publish
