"""The ``publish`` stage: a versioned, self-describing artifact directory for serving.

``DIR/publish/v<N>/`` holds copies of the files the Serve app reads plus ``manifest.json`` (version,
creation time, per-stage output hashes, every file's size and checksum, config, headline metrics). Every
copy is read back and checked against the checksums its stage recorded before anything is published. It is
assembled in a temporary directory, fsynced and renamed into place, so a reader never sees a half-published
version; ``DIR/publish/LATEST`` names the newest version. Works for local paths and any pyarrow filesystem
URI: object stores (S3, GCS) have no directory rename, so there the version is written in place and
``manifest.json``, written last, marks it complete (``LATEST`` is updated only after it).
"""

from __future__ import annotations

import dataclasses
import json
import time
import uuid

from interestrec import artifacts, layout, verify
from interestrec.integrity import CHECKSUM, ArtifactError
from interestrec.stages import StageContext

# stage -> files (relative to the stage dir) the serving side needs; missing optional ones are skipped
SERVED_FILES: dict[str, tuple[str, ...]] = {
    layout.INGEST: (layout.INGEST_EVENTS, layout.INGEST_ITEMS, layout.INGEST_WINDOWS, layout.INGEST_USER_IDS,
                    layout.INGEST_ITEM_IDS),
    layout.ENCODE: (layout.ENCODE_ITEMS, layout.ENCODE_USERS),
    layout.CLUSTER: (layout.CLUSTER_CENTROIDS, layout.CLUSTER_ASSIGNMENTS),
    layout.DYNAMICS: (layout.DYNAMICS_CLUSTERS, layout.DYNAMICS_LINEAGE),
    layout.GRAPH: (layout.GRAPH_USERS, layout.GRAPH_ITEMS, layout.GRAPH_WEIGHTS, layout.GRAPH_CONFIG),
    layout.EVALUATE: (),
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
    """Copy served artifacts into a new version directory, read every copy back, and only then move ``LATEST``.

    Each copied file must match the size and checksum the stage that wrote it recorded (its ``_files.json``,
    when it has one) and parse (parquet footer, ``.npy`` / safetensors header against the file size, JSON);
    a directory dataset must list parts that exist and add up to its row count. Files, manifest and
    directories are fsynced before the version is renamed into place and ``LATEST`` is moved. On any failure
    the partial version is removed and ``LATEST`` stays where it was; the error names the file. Temporary
    directories left by a killed publish are removed first.

    Raises:
        ArtifactError: a served file is missing, truncated or damaged (its source path in the message).
    """
    import pyarrow.fs as pafs

    publish_dir = ctx.stage_dir("publish")
    fs, root = artifacts._fs_and_path(publish_dir)
    renames = isinstance(fs, pafs.LocalFileSystem)  # object stores cannot rename a directory
    _remove_stale(ctx, fs, root, renames)
    version = next_version(publish_dir)
    final = f"{root}/v{version}"
    tmp = f"{root}/.tmp-v{version}-{uuid.uuid4().hex[:8]}" if renames else final
    complete = False  # on an object store: manifest.json written, the version is whole
    try:
        fs.create_dir(tmp, recursive=True)
        files, stages, metrics, sums = _assemble(ctx, fs, tmp)
        manifest = {
            "version": version,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "stages": stages,
            "files": files,
            "checksums": {"algorithm": CHECKSUM, "files": dict(sorted(sums.items()))},
            "metrics": metrics,
            "config": dataclasses.asdict(ctx.config),
        }
        # the rename (object stores: the manifest, written last) publishes it
        artifacts.write_bytes_atomic(artifacts.join(publish_dir, tmp.rsplit("/", 1)[1], layout.PUBLISH_MANIFEST),
                                     (json.dumps(manifest, indent=2, default=str) + "\n").encode())
        complete = not renames
        if renames:
            verify.fsync_tree(tmp)
            fs.move(tmp, final)
            verify.fsync_dir(root)
    except BaseException:
        if not complete and fs.get_file_info(tmp).type == pafs.FileType.Directory:
            fs.delete_dir(tmp)
        raise
    artifacts.write_bytes_atomic(artifacts.join(publish_dir, layout.PUBLISH_LATEST), f"v{version}\n".encode())
    if renames:
        verify.fsync_dir(root)
    ctx.log(f"publish: v{version} with {len(files)} files ({len(sums)} checked)")
    return {"version": version, "path": artifacts.join(publish_dir, f"v{version}"), "files": len(files), "stages": sorted(stages)}


def outputs(summary: dict) -> list[str]:
    """What a publish run wrote under ``publish/`` (its stage checksum manifest covers only this): the new
    version. ``LATEST`` is left out, so moving it back to an older version by hand is not "damage"."""
    return [f"v{summary['version']}"]


def _assemble(ctx: StageContext, fs, tmp: str) -> tuple[list[str], dict, dict, dict]:
    """Copy and check the served files of every stage with a summary into ``tmp``, then fit the item table.

    Returns:
        ``(files, stages, metrics, checksums)``: the copied paths (relative to the version), each stage's
        output hash and time, the evaluation's headline metrics, and every file's manifest entry.
    """
    import pyarrow.fs as pafs

    stages, metrics, files, sums = {}, {}, [], {}
    for stage, names in SERVED_FILES.items():
        stage_dir = ctx.stage_dir(stage)
        summary_path = artifacts.join(stage_dir, layout.SUMMARY)
        if not artifacts.exists(summary_path):
            continue
        summary = artifacts.read_json(summary_path)
        stages[stage] = {"output_hash": summary.get("_run", {}).get("output_hash"), "seconds": summary.get("_run", {}).get("seconds")}
        if stage == "evaluate":
            metrics = {m: {k: v for k, v in row.items() if k in ("ndcg@10", "hr@10", "recall@20", "mrr", "params")} for m, row in summary.get("models", {}).items()}
        written = verify.read_stage_manifest(stage_dir)
        if written is None and names:
            ctx.log(f"publish: {stage} has no {verify.FILES} (written before checksums were kept): its files are "
                    "checked by parsing only")
        listed = (written or {}).get("files", {})
        for name in names:
            src_fs, src = artifacts._fs_and_path(artifacts.join(stage_dir, name))
            kind = src_fs.get_file_info(src).type
            if kind == pafs.FileType.NotFound:
                if any(rel == name or rel.startswith(name + "/") for rel in listed):
                    raise ArtifactError(f"{artifacts.join(stage_dir, name)}: missing, but the {stage} stage wrote it")
                continue  # an optional file this output does not have
            is_dir = kind == pafs.FileType.Directory  # a directory dataset (parts + manifest)
            dest = f"{tmp}/{stage}/{name}"
            fs.create_dir(dest if is_dir else dest.rsplit("/", 1)[0], recursive=True)
            pafs.copy_files(src, dest, source_filesystem=src_fs, destination_filesystem=fs)
            sums.update(_check_copied(fs, dest, stage_dir, stage, name, listed, is_dir))
            files.append(f"{stage}/{name}")
    table = _write_item_table(ctx, tmp, (metrics.get("fused") or {}).get("params") or {})
    files.append(table)
    version_dir = artifacts.join(ctx.stage_dir("publish"), tmp.rsplit("/", 1)[1])
    entry = verify.build_manifest(version_dir, include=[table])["files"]  # recorded when written: not read again
    for rel, e in entry.items():
        verify.check_structure(fs, f"{tmp}/{rel}", f"{version_dir}/{rel}", e["size"])
    sums.update(entry)
    return files, stages, metrics, sums


def _check_copied(fs, dest: str, stage_dir: str, stage: str, name: str, listed: dict, is_dir: bool) -> dict:
    """Read back a copy of ``<stage>/<name>`` (a file or a dataset directory): every file against the entry the
    stage's manifest ``listed`` for it, nothing listed missing, a dataset whole. Returns the entries keyed by
    the path within the version; errors name the source file."""
    import pyarrow.fs as pafs

    if is_dir:
        infos = fs.get_file_info(pafs.FileSelector(dest, recursive=True))
        rels = sorted(f"{name}/{i.path[len(dest) + 1:]}" for i in infos if i.type == pafs.FileType.File)
        rels = [r for r in rels if not any(part.startswith(".") for part in r.split("/"))]  # writers' temporaries
    else:
        rels = [name]
    lost = sorted(r for r in listed if r.startswith(name + "/") and r not in rels)
    if lost:
        raise ArtifactError(f"{artifacts.join(stage_dir, lost[0])}: missing, but the {stage} stage wrote it"
                            + (f" ({len(lost) - 1} more missing)" if len(lost) > 1 else ""))
    base = dest[: len(dest) - len(name)]  # the stage's directory inside the version
    entries = verify.threaded(lambda r: verify.check_copy(fs, base + r, artifacts.join(stage_dir, r), listed.get(r)), rels)
    if is_dir and name.endswith(".parquet"):
        verify.check_dataset(fs, dest, artifacts.join(stage_dir, name))
    return {f"{stage}/{r}": e for r, e in zip(rels, entries)}


def _remove_stale(ctx: StageContext, fs, root: str, renames: bool) -> None:
    """Remove what an interrupted publish left: ``.tmp-v*`` directories (local), or versions above ``LATEST``
    without ``manifest.json`` (object stores, where a version is assembled in place)."""
    import pyarrow.fs as pafs

    infos = [i for i in fs.get_file_info(pafs.FileSelector(root, allow_not_found=True)) if i.type == pafs.FileType.Directory]
    if renames:
        stale = [i for i in infos if i.base_name.startswith(".tmp-v")]
    else:
        latest_path = f"{root}/{layout.PUBLISH_LATEST}"
        latest = 0
        if fs.get_file_info(latest_path).type == pafs.FileType.File:
            with fs.open_input_stream(latest_path) as f:
                name = f.read().decode().strip()
            latest = int(name[1:]) if name[1:].isdigit() else 0
        stale = [i for i in infos if i.base_name.startswith("v") and i.base_name[1:].isdigit()
                 and int(i.base_name[1:]) > latest
                 and fs.get_file_info(f"{i.path}/{layout.PUBLISH_MANIFEST}").type == pafs.FileType.NotFound]
    for i in stale:
        fs.delete_dir(i.path)
        ctx.log(f"publish: removed {i.base_name}, left by an interrupted publish")


def _write_item_table(ctx: StageContext, tmp: str, fused_params: dict) -> str:
    """Fit the fused recommender's item–item table on every interaction of the version being assembled
    (its ``ingest/events.parquet``, never an earlier version's) with this evaluation's tuned ``lam`` /
    ``neighbours`` (``fused_params``), into that version; returns its relative path."""
    from interestrec.recommend import artifacts as ra
    from interestrec.recommend.fused import FusedParams
    from interestrec.recommend.itemitem import TABLE_FILE, fused_table, write_table

    version_dir = artifacts.join(ctx.stage_dir("publish"), tmp.rsplit("/", 1)[1])
    arts = ra.load(version_dir)  # no manifest and no publish/ inside it yet: reads exactly the files being published
    params = FusedParams.from_params(fused_params)
    table = fused_table(arts.ev_user, arts.ev_item, len(arts.user_ids), len(arts.item_ids), arts.item_vecs, params)
    write_table(artifacts.join(version_dir, TABLE_FILE), table, arts.item_ids)
    ctx.log(f"publish: item–item table, {table.nnz} entries over {len(arts.item_ids)} items")
    return TABLE_FILE


def latest_version_dir(out: str) -> str:
    """Path of the newest published version under pipeline output ``out``."""
    publish_dir = artifacts.join(out, layout.PUBLISH)
    name = artifacts.read_bytes(artifacts.join(publish_dir, layout.PUBLISH_LATEST)).decode().strip()
    return artifacts.join(publish_dir, name)


run = publish
