"""Checksum manifests of stage outputs and the checks that read them before anything is skipped or served.

Each stage directory gets ``_files.json`` (written by :func:`interestrec.stages.run_stage` after the stage,
before its ``summary.json``): the size and checksum of every file under it. A skip re-checks them
(:func:`damage`); ``publish`` checks each file it copies against them and parses it (:func:`check_copy`).
Checksums are streamed, and a file the stage's driver wrote through :mod:`interestrec.artifacts` is not
read back (its checksum was recorded at write time, :func:`interestrec.integrity.recording`); parts written
by Ray workers are read once. Local paths and pyarrow URIs alike.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence

from interestrec import artifacts, layout
from interestrec.integrity import CHECKSUM, CHUNK, ArtifactError, naming, recorded

FILES = layout.FILES
NOT_LISTED = (layout.SUMMARY, FILES)  # the stage's record, written after the manifest
THREADS = 4  # files checksummed at once (hashlib and pyarrow reads release the GIL)


def threaded(fn, items: list) -> list:
    """``[fn(x) for x in items]`` on a few threads (in order; the first exception propagates)."""
    if len(items) <= 1:
        return [fn(x) for x in items]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(min(THREADS, len(items))) as pool:
        return list(pool.map(fn, items))


def checksum(fs, path: str) -> tuple[int, str]:
    """``(size, hex digest)`` of one file, streamed in ``CHUNK`` pieces."""
    h, n = hashlib.new(CHECKSUM), 0
    with fs.open_input_stream(path) as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
            n += len(chunk)
    return n, h.hexdigest()


def build_manifest(directory: str, include: Sequence[str] | None = None) -> dict:
    """Size and checksum of every file under ``directory`` (recursively; ``summary.json``, the manifest itself
    and dot-files — writers' temporaries — left out).

    Args:
        include: only these relative paths (files, or directories and everything under them).

    Returns:
        ``{"algorithm": "sha256", "files": {relative path: {"size": int, "sha256": hex}}}``, sorted by path.
    """
    import pyarrow.fs as pafs

    fs, root = artifacts._fs_and_path(directory)
    root = root.rstrip("/")
    infos = [i for i in fs.get_file_info(pafs.FileSelector(root, recursive=True, allow_not_found=True))
             if i.type == pafs.FileType.File]
    rows = []
    for i in infos:
        rel = i.path[len(root) + 1:]
        if rel in NOT_LISTED or any(part.startswith(".") for part in rel.split("/")):
            continue
        if include is not None and not any(rel == x or rel.startswith(x.rstrip("/") + "/") for x in include):
            continue
        rows.append((rel, i))

    def entry(row) -> dict:
        rel, info = row
        digest = recorded(f"{fs.type_name}:{info.path}", info.size, info.mtime_ns)
        size = info.size
        if digest is None:
            size, digest = checksum(fs, info.path)
        return {"size": size, CHECKSUM: digest}

    entries = threaded(entry, rows)
    return {"algorithm": CHECKSUM, "files": dict(sorted(zip((r for r, _ in rows), entries)))}


def write_stage_manifest(directory: str, include: Sequence[str] | None = None) -> dict:
    """Build :func:`build_manifest` over a stage's directory and write it as ``<directory>/_files.json``."""
    manifest = build_manifest(directory, include)
    artifacts.write_json(artifacts.join(directory, FILES), manifest)
    return manifest


def manifest_hash(manifest: dict) -> str:
    """One digest of a manifest's files (names, sizes, checksums): the stage's ``output_hash``."""
    doc = json.dumps(manifest["files"], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(doc.encode()).hexdigest()


def read_stage_manifest(directory: str) -> dict | None:
    """A stage's ``_files.json``, or ``None`` when it has none (outputs written before checksums were kept).

    Raises:
        ArtifactError: the manifest exists but is malformed or uses another checksum algorithm.
    """
    path = artifacts.join(directory, FILES)
    if not artifacts.exists(path):
        return None
    doc = artifacts.read_json(path)
    files = doc.get("files") if isinstance(doc, dict) else None
    if not isinstance(files, dict) or doc.get("algorithm") != CHECKSUM:
        raise ArtifactError(f"{path}: not a {CHECKSUM} file manifest")
    if not all(isinstance(e, dict) and isinstance(e.get("size"), int) and isinstance(e.get(CHECKSUM), str)
               for e in files.values()):
        raise ArtifactError(f"{path}: an entry without size or {CHECKSUM}")
    return doc


def damage(directory: str, manifest: dict) -> list[str]:
    """What no longer matches ``manifest`` under ``directory``: missing files, other sizes, other checksums
    (one line each, relative paths; empty when intact). Sizes are compared first; checksums are read only
    when every size matches."""
    import pyarrow.fs as pafs

    fs, root = artifacts._fs_and_path(directory)
    files = manifest["files"]
    infos = fs.get_file_info([f"{root.rstrip('/')}/{rel}" for rel in files]) if files else []
    found = []
    for (rel, want), info in zip(files.items(), infos):
        if info.type != pafs.FileType.File:
            found.append(f"{rel}: missing")
        elif info.size != want["size"]:
            found.append(f"{rel}: {info.size} bytes, {want['size']} written")
    if found:
        return found
    got = threaded(lambda i: checksum(fs, i.path)[1], infos)
    return [f"{rel}: {CHECKSUM} differs from the one written" for (rel, want), digest in zip(files.items(), got)
            if digest != want[CHECKSUM]]


def stage_damage(directory: str, previous_run: dict) -> list[str]:
    """Why a stage's outputs cannot be trusted for a skip (empty when they can).

    With ``_files.json``: :func:`damage`. Without it (written before checksums were kept), a local output
    whose content still hashes to the recorded ``output_hash`` gets its manifest now and counts as intact.
    """
    try:
        manifest = read_stage_manifest(directory)
    except ArtifactError as e:  # a damaged manifest is damaged output like any other
        return [str(e)]
    if manifest is not None:
        return damage(directory, manifest)
    if artifacts.is_local(directory) and artifacts.exists(directory):
        if artifacts.hash_files([str(directory).removeprefix("file://")]) == previous_run.get("output_hash"):
            write_stage_manifest(directory)
            return []
        return [f"no {FILES}, and the files no longer hash to the recorded output_hash"]
    return [f"no {FILES} to check the outputs against"]


def check_copy(fs, path: str, shown: str, expected: dict | None) -> dict:
    """Read back one copied file: its checksum against ``expected`` (the writing stage's manifest entry, when
    it has one) and its structure (:func:`check_structure`); returns its manifest entry.

    Raises:
        ArtifactError: naming ``shown`` (the source file), on a size or checksum mismatch or a parse failure.
    """
    size, digest = checksum(fs, path)
    if expected is not None and size != expected["size"]:
        raise ArtifactError(f"{shown}: {size} bytes, but its stage wrote {expected['size']} (truncated or changed since)")
    if expected is not None and digest != expected[CHECKSUM]:
        raise ArtifactError(f"{shown}: {CHECKSUM} differs from the one its stage wrote (damaged or changed since)")
    check_structure(fs, path, shown, size)
    return {"size": size, CHECKSUM: digest}


def check_structure(fs, path: str, shown: str, size: int) -> None:
    """Parse enough of a file to know it is whole: a parquet footer, an ``.npy`` or safetensors header against
    the file size, a whole JSON document; other files are not parsed.

    Raises:
        ArtifactError: naming ``shown``.
    """
    name = path.rsplit("/", 1)[-1]
    with naming(shown):
        if name.endswith(".parquet"):
            import pyarrow.parquet as pq

            with fs.open_input_file(path) as f:
                pq.ParquetFile(f).metadata  # noqa: B018 (reading the footer is the check)
        elif name.endswith(".json"):
            with fs.open_input_stream(path) as f:
                json.loads(f.read())
        elif name.endswith(".npy"):
            _check_npy(fs, path, shown, size)
        elif name.endswith(".safetensors"):
            _check_safetensors(fs, path, shown, size)


def _check_npy(fs, path: str, shown: str, size: int) -> None:
    import numpy as np

    fmt = np.lib.format
    with fs.open_input_file(path) as f:
        version = fmt.read_magic(f)
        if version not in ((1, 0), (2, 0)):  # 3.0 (utf-8 field names) has no public header reader: load it
            np.load(f, allow_pickle=False)
            return
        read = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
        shape, _, dtype = read(f)
        want = f.tell() + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if dtype.hasobject or size != want:
        raise ArtifactError(f"{shown}: .npy of shape {shape} {dtype} needs {want} bytes, the file has {size}")


def _check_safetensors(fs, path: str, shown: str, size: int) -> None:
    with fs.open_input_file(path) as f:
        head = f.read(8)
        n = int.from_bytes(head, "little") if len(head) == 8 else -1
        if not 0 < n <= size - 8:
            raise ArtifactError(f"{shown}: safetensors header length {n} does not fit a {size}-byte file")
        header = json.loads(f.read(n))
    try:
        end = max((int(t["data_offsets"][1]) for k, t in header.items() if k != "__metadata__"), default=0)
    except (AttributeError, KeyError, TypeError, IndexError) as e:
        raise ArtifactError(f"{shown}: malformed safetensors header ({type(e).__name__}: {e})") from e
    if 8 + n + end != size:
        raise ArtifactError(f"{shown}: safetensors tensors end at byte {8 + n + end}, the file has {size}")


def check_dataset(fs, directory: str, shown: str) -> None:
    """A copied directory dataset is whole: its ``_manifest.json`` lists parts that exist and whose footers'
    row counts add up to its ``rows``.

    Raises:
        ArtifactError: naming ``shown`` (the source dataset) or its manifest.
    """
    import pyarrow.fs as pafs
    import pyarrow.parquet as pq

    manifest = f"{directory}/{artifacts.MANIFEST}"
    if fs.get_file_info(manifest).type != pafs.FileType.File:
        raise ArtifactError(f"{shown}: incomplete dataset (no {artifacts.MANIFEST})")
    with fs.open_input_stream(manifest) as f, naming(f"{shown}/{artifacts.MANIFEST}"):
        doc = json.loads(f.read())
    if not isinstance(doc, dict) or not isinstance(doc.get("parts"), list):
        raise ArtifactError(f"{shown}/{artifacts.MANIFEST}: no 'parts' list")
    rows = 0
    for part in doc["parts"]:
        with naming(f"{shown}/{part}"):
            if fs.get_file_info(f"{directory}/{part}").type != pafs.FileType.File:
                raise ArtifactError(f"{shown}/{part}: listed in {artifacts.MANIFEST} but missing")
            with fs.open_input_file(f"{directory}/{part}") as f:
                rows += pq.ParquetFile(f).metadata.num_rows
    if "rows" in doc and rows != doc["rows"]:
        raise ArtifactError(f"{shown}: its parts hold {rows} rows, {artifacts.MANIFEST} says {doc['rows']}")


def fsync_tree(directory: str) -> None:
    """fsync every file and directory under a local ``directory`` (and the directory itself), so a rename that
    publishes it never exposes data still in the page cache."""
    for here, _dirs, names in os.walk(directory):
        for name in names:
            fd = os.open(os.path.join(here, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        fsync_dir(here)


def fsync_dir(directory: str) -> None:
    """fsync a local directory (its entries: renames and new files in it are then durable)."""
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
