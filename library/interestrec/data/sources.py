"""Input files on any pyarrow filesystem: listing, opening (``.gz`` too) and fingerprinting.

A location is a local path or a URI (``s3://``, ``gs://``, ``file://``). Directories are listed
recursively, so partition folders (``date=2024-01-01/part-0.csv``) are read; names starting with ``.``
or ``_`` (``_SUCCESS``, ``.crc``) are the only files passed over, and they are listed in the summary.
"""

from __future__ import annotations

import gzip
import hashlib
from dataclasses import dataclass

from interestrec.data.errors import DataError

CONTENT_HASH_LIMIT = 1 << 30  # remote inputs up to 1 GiB are content-hashed; larger ones by size + mtime


@dataclass(frozen=True)
class SourceFile:
    """One input file.

    Attributes:
        uri: where it is (local absolute path or URI), as given to :func:`read_bytes`.
        name: its path relative to the dataset root (the ``source`` of its rows and rejects).
        size: bytes on storage.
    """

    uri: str
    name: str
    size: int

    @property
    def kind(self) -> str:
        """The file's suffix without ``.gz`` (``.csv``, ``.jsonl``, ``.inter``…)."""
        return suffix(self.name)


def suffix(name: str) -> str:
    """Lower-case suffix of ``name`` ignoring a trailing ``.gz``: ``a.csv.gz`` → ``.csv``."""
    n = name.lower().removesuffix(".gz")
    base = n.rsplit("/", 1)[-1]
    return "." + base.rsplit(".", 1)[-1] if "." in base else ""


def basename(name: str) -> str:
    """The last path component."""
    return name.rstrip("/").rsplit("/", 1)[-1]


def _fs(location: str):
    from interestrec import artifacts

    return artifacts._fs_and_path(location.removeprefix("file://") if location.startswith("file://") else location)


def _uri(location: str, fs_path: str) -> str:
    """Re-attach the scheme of ``location`` to a path inside its filesystem."""
    if "://" in location and not location.startswith("file://"):
        return location.split("://", 1)[0] + "://" + fs_path
    return fs_path


def is_dir(location: str) -> bool:
    """True when ``location`` is a directory (or a prefix holding objects)."""
    import pyarrow.fs as pafs

    fs, p = _fs(location)
    return fs.get_file_info(p).type == pafs.FileType.Directory


def exists(location: str) -> bool:
    """True when a file or directory is at ``location``."""
    import pyarrow.fs as pafs

    fs, p = _fs(location)
    return fs.get_file_info(p).type != pafs.FileType.NotFound


def list_files(location: str) -> tuple[list[SourceFile], list[str]]:
    """All files at ``location`` (itself when a file), recursively, and the hidden names passed over."""
    import pyarrow.fs as pafs

    fs, p = _fs(location)
    info = fs.get_file_info(p)
    if info.type == pafs.FileType.NotFound:
        raise DataError(f"no such file or directory: {location}")
    if info.type == pafs.FileType.File:
        return [SourceFile(_uri(location, p), basename(p), int(info.size or 0))], []
    files, hidden = [], []
    for f in fs.get_file_info(pafs.FileSelector(p, recursive=True)):
        if f.type != pafs.FileType.File:
            continue
        rel = f.path[len(p.rstrip("/")) + 1:]
        if any(part.startswith((".", "_")) for part in rel.split("/")):
            hidden.append(rel)
            continue
        files.append(SourceFile(_uri(location, f.path), rel, int(f.size or 0)))
    return sorted(files, key=lambda s: s.name), sorted(hidden)


def child(location: str, name: str) -> SourceFile | None:
    """The file ``name`` directly under directory ``location`` (or its ``.gz``), if present."""
    from interestrec import artifacts

    for cand in (name, name + ".gz"):
        uri = artifacts.join(location, cand)
        fs, p = _fs(uri)
        info = fs.get_file_info(p)
        if info.is_file:
            return SourceFile(uri, cand, int(info.size or 0))
    return None


def read_bytes(uri: str) -> bytes:
    """A file's bytes, gunzipped when its name ends in ``.gz``; a corrupt archive is a clear error."""
    fs, p = _fs(uri)
    try:
        with fs.open_input_stream(p, compression=None) as f:  # gunzipped below, with a clear error
            data = f.read()
    except OSError as e:
        raise DataError(f"cannot read input file {uri}: {e}") from e
    if uri.lower().endswith(".gz"):
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as e:
            raise DataError(f"cannot read input file {uri}: not a valid gzip file ({e})") from e
    return data


def read_head(uri: str, limit: int = 1 << 20) -> bytes:
    """The first ``limit`` bytes of a file (fewer when it is shorter), gunzipped when its name ends in ``.gz``."""
    fs, p = _fs(uri)
    try:
        with fs.open_input_stream(p, compression="gzip" if uri.lower().endswith(".gz") else None) as f:
            return f.read(limit)
    except OSError as e:
        raise DataError(f"cannot read input file {uri}: {e}") from e


def read_first_line(uri: str, limit: int = 1 << 20) -> bytes:
    """The first line of a file (at most ``limit`` bytes), gunzipped when its name ends in ``.gz``."""
    return read_head(uri, limit).split(b"\n", 1)[0]


def fingerprint(location: str) -> str:
    """Hash of the input data at ``location``: contents for local files and remote data up to 1 GiB,
    else every file's name, size and modification time (object stores change both on a rewrite)."""
    import pyarrow.fs as pafs

    from interestrec import artifacts

    if artifacts.is_local(location):
        return artifacts.hash_files([location.removeprefix("file://")])
    fs, p = _fs(location)
    info = fs.get_file_info(p)
    infos = [info] if info.type == pafs.FileType.File else [
        f for f in fs.get_file_info(pafs.FileSelector(p, recursive=True)) if f.type == pafs.FileType.File]
    infos = sorted(infos, key=lambda f: f.path)
    h = hashlib.sha256()
    by_content = sum(int(f.size or 0) for f in infos) <= CONTENT_HASH_LIMIT
    for f in infos:
        h.update(f"{f.path}\0{f.size}\0".encode())
        if by_content:
            with fs.open_input_stream(f.path, compression=None) as s:
                for chunk in iter(lambda s=s: s.read(1 << 20), b""):
                    h.update(chunk)
        else:
            h.update(str(f.mtime_ns).encode())
    return h.hexdigest()
