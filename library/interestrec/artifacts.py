"""Artifact I/O: atomic writes and pickle-free reads (parquet, json, npy, safetensors).

Every stage writes through these helpers so a crashed job never leaves a half-written file behind:
data goes to a temporary sibling first and is renamed into place. Paths may be local paths or any
``pyarrow.fs`` URI (``s3://``, ``gs://``, ``file://``); renames on object stores are a copy. Each write records
the size and checksum of what it wrote (:mod:`interestrec.integrity`), so a stage's checksum manifest need not
read it back; a reader that cannot parse a file raises :class:`ArtifactError` naming it.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from interestrec import layout
from interestrec.integrity import ArtifactError, naming, record
from interestrec.vectors import arrow_to_vectors as arrow_to_vectors  # re-exported: docs/artifacts.md names
from interestrec.vectors import vectors_to_arrow as vectors_to_arrow  # them here, and so do their callers


def _fs_and_path(path: str | os.PathLike):
    """Resolve ``path`` to ``(pyarrow filesystem, path-in-filesystem)``."""
    import pyarrow.fs as pafs

    p = str(path)
    if "://" in p:
        return pafs.FileSystem.from_uri(p)
    return pafs.LocalFileSystem(), os.path.abspath(p)


def is_local(path: str | os.PathLike) -> bool:
    """True when ``path`` is on the local filesystem."""
    p = str(path)
    return "://" not in p or p.startswith("file://")


def join(base: str | os.PathLike, *parts: str) -> str:
    """Join path parts for local paths and URIs alike."""
    b = str(base).rstrip("/")
    return "/".join([b, *[str(x).strip("/") for x in parts]])


def makedirs(path: str | os.PathLike) -> None:
    """Create a directory (and parents) on any pyarrow filesystem."""
    fs, p = _fs_and_path(path)
    fs.create_dir(p, recursive=True)


def exists(path: str | os.PathLike) -> bool:
    """True when a file or directory exists at ``path``."""
    import pyarrow.fs as pafs

    fs, p = _fs_and_path(path)
    return fs.get_file_info(p).type != pafs.FileType.NotFound


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary sibling and a rename (its size and checksum recorded)."""
    if is_local(path):
        target = Path(str(path).removeprefix("file://"))
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        record(f"local:{os.path.abspath(target)}", data, target.stat().st_mtime_ns)
        return
    fs, p = _fs_and_path(path)
    parent = p.rsplit("/", 1)[0]
    fs.create_dir(parent, recursive=True)
    tmp = f"{parent}/.tmp-{uuid.uuid4().hex}"
    with fs.open_output_stream(tmp) as f:
        f.write(data)
    fs.move(tmp, p)
    record(f"{fs.type_name}:{p}", data, None)


def read_bytes(path: str | os.PathLike) -> bytes:
    """Read a whole file from any pyarrow filesystem."""
    fs, p = _fs_and_path(path)
    with fs.open_input_stream(p) as f:
        return f.read()


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Atomically write ``obj`` as pretty, strict JSON (numpy values converted, NaN/inf written as null)."""
    text = json.dumps(_finite(obj), indent=2, default=_json_default, allow_nan=False)
    write_bytes_atomic(path, (text + "\n").encode())


def _finite(o: Any) -> Any:
    if isinstance(o, float | np.floating):
        return float(o) if np.isfinite(o) else None
    if isinstance(o, dict):
        return {k: _finite(v) for k, v in o.items()}
    if isinstance(o, list | tuple):
        return [_finite(v) for v in o]
    return o


def read_json(path: str | os.PathLike) -> Any:
    """Read a JSON file (:class:`ArtifactError` naming it when it does not parse)."""
    data = read_bytes(path)
    with naming(path):
        return json.loads(data)


def _json_default(o: Any) -> Any:
    import dataclasses

    if dataclasses.is_dataclass(o) and not isinstance(o, type):
        return dataclasses.asdict(o)
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def write_parquet(path: str | os.PathLike, table, row_groups: list[int] | None = None) -> None:
    """Atomically write a ``pyarrow.Table`` (or pandas DataFrame) as one parquet file.

    Args:
        row_groups: row-group lengths (summing to the row count), e.g. one group per value of a sorted
            column so that readers filtering on it skip the others; default: pyarrow's.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    if not isinstance(table, pa.Table):
        table = pa.Table.from_pandas(table, preserve_index=False)
    buf = io.BytesIO()
    if row_groups is None:
        pq.write_table(table, buf, compression="zstd")
    else:
        if sum(row_groups) != table.num_rows:
            raise ValueError(f"row_groups sum to {sum(row_groups)}, the table has {table.num_rows} rows")
        with pq.ParquetWriter(buf, table.schema, compression="zstd") as w:
            start = 0
            for n in row_groups:
                w.write_table(table.slice(start, n), row_group_size=max(n, 1))
                start += n
    write_bytes_atomic(path, buf.getvalue())


MANIFEST = "_manifest.json"


def read_parquet(path: str | os.PathLike, columns: list[str] | None = None, filters=None):
    """Read a parquet file, or a directory dataset through its ``_manifest.json``, into a ``pyarrow.Table``.

    A directory dataset (written part by part by workers, see :func:`write_manifest`) is complete only once
    its manifest exists; reading one without it is an error, never a silent partial read.

    Args:
        filters: a pyarrow filter expression or DNF list (rows not matching are dropped; row groups whose
            statistics exclude a match are not read).
    """
    import pyarrow.fs as pafs
    import pyarrow.parquet as pq

    fs, p = _fs_and_path(path)
    if fs.get_file_info(p).type != pafs.FileType.Directory:
        with naming(path):
            return pq.read_table(p, filesystem=fs, columns=columns, filters=filters)
    files = [f"{p.rstrip('/')}/{name}" for name in _parts(path)]
    with naming(path):
        return pq.ParquetDataset(files, filesystem=fs, filters=filters).read(columns=columns)


def parquet_files(path: str | os.PathLike) -> list[str]:
    """The files of a parquet artifact, as paths in ``path``'s own form (URIs stay URIs).

    ``[path]`` for a single file; for a directory dataset the parts its ``_manifest.json`` lists, in order
    (an error without the manifest, as in :func:`read_parquet`). This is how per-part readers (Ray tasks,
    ``ray.data.read_parquet``) see exactly what :func:`read_parquet` reads.
    """
    import pyarrow.fs as pafs

    fs, p = _fs_and_path(path)
    if fs.get_file_info(p).type != pafs.FileType.Directory:
        return [str(path)]
    return [join(path, name) for name in _parts(path)]


def _parts(path: str | os.PathLike) -> list[str]:
    """The part names a directory dataset's ``_manifest.json`` lists (an error naming it when absent or malformed)."""
    manifest = join(path, MANIFEST)
    if not exists(manifest):
        raise FileNotFoundError(f"{path}: incomplete dataset (no {MANIFEST}; its writer did not finish)")
    doc = read_json(manifest)
    if not isinstance(doc, dict) or not isinstance(doc.get("parts"), list):
        raise ArtifactError(f"{manifest}: no 'parts' list")
    return [str(name) for name in doc["parts"]]


def write_manifest(directory: str | os.PathLike, parts: list[str], rows: int) -> None:
    """Commit a directory dataset: write ``_manifest.json`` (its part files, in order, and the row count) last."""
    write_json(join(directory, MANIFEST), {"parts": list(parts), "rows": int(rows)})


def remove(path: str | os.PathLike) -> None:
    """Delete a file or a directory tree on any pyarrow filesystem (nothing when it is absent)."""
    import pyarrow.fs as pafs

    fs, p = _fs_and_path(path)
    kind = fs.get_file_info(p).type
    if kind == pafs.FileType.Directory:
        fs.delete_dir(p)
    elif kind != pafs.FileType.NotFound:
        fs.delete_file(p)


def write_npy(path: str | os.PathLike, array: np.ndarray) -> None:
    """Atomically write one array as ``.npy`` (never pickled)."""
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(array), allow_pickle=False)
    write_bytes_atomic(path, buf.getvalue())


def read_npy(path: str | os.PathLike) -> np.ndarray:
    """Read an ``.npy`` file with pickling disabled."""
    data = read_bytes(path)
    with naming(path):
        return np.load(io.BytesIO(data), allow_pickle=False)


def write_safetensors(path: str | os.PathLike, tensors: Mapping[str, Any], metadata: dict | None = None) -> None:
    """Atomically write torch tensors or numpy arrays as safetensors."""
    from safetensors.numpy import save

    arrays = {k: (v.detach().cpu().numpy() if hasattr(v, "detach") else np.asarray(v)) for k, v in tensors.items()}
    arrays = {k: np.ascontiguousarray(v) for k, v in arrays.items()}
    meta = {k: str(v) for k, v in (metadata or {}).items()}
    write_bytes_atomic(path, save(arrays, metadata=meta))


def read_safetensors(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read safetensors into numpy arrays."""
    from safetensors.numpy import load

    data = read_bytes(path)
    with naming(path):
        return load(data)


def hash_files(paths: list[str | os.PathLike], exclude: tuple[str, ...] = (layout.SUMMARY,)) -> str:
    """Content hash (sha256, hex) of files or directories, independent of modification times.

    Files whose name is in ``exclude`` (by default the stage summaries) are left out.
    """
    h = hashlib.sha256()
    for root in sorted(str(p) for p in paths):
        files = [Path(root)] if Path(root).is_file() else sorted(q for q in Path(root).rglob("*") if q.is_file())
        files = [f for f in files if f.name not in exclude]
        for f in files:
            h.update(str(f.relative_to(root) if f != Path(root) else f.name).encode())
            with open(f, "rb") as fh:
                for chunk in iter(lambda fh=fh: fh.read(1 << 20), b""):
                    h.update(chunk)
    return h.hexdigest()


def hash_config(obj: Any) -> str:
    """Stable short hash of a config dataclass or mapping."""
    import dataclasses

    if dataclasses.is_dataclass(obj):
        obj = dataclasses.asdict(obj)
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=_json_default).encode()).hexdigest()[:16]
