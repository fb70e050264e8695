"""Where a Ray Train run lives: the storage path every worker node must reach, and removing a finished run."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from interestrec import artifacts
from interestrec.train.errors import StorageError


def cluster_nodes() -> list[dict]:
    """``ray.nodes()`` of the connected cluster; ``[]`` when Ray is not initialised."""
    import ray

    return ray.nodes() if ray.is_initialized() else []


def alive_nodes(nodes: Sequence[Mapping[str, Any]]) -> int:
    """How many of ``nodes`` (``ray.nodes()`` entries) are alive."""
    return sum(1 for n in nodes if n.get("Alive"))


def resolve_storage(what: str, given: str | None, default: str, *, out: str, num_workers: int,
                    nodes: Callable[[], Sequence[Mapping[str, Any]]] | None = None) -> str:
    """The Ray Train ``storage_path`` of a stage: ``given`` unchanged when set, else ``default``.

    Every worker node must reach it. ``default`` lies under the pipeline output, so it is shared whenever
    that is (object storage such as ``s3://``, or a shared mount); a local default for several workers on
    a multi-node cluster is refused here with a clear error instead of failing later on a missing
    checkpoint. ``nodes`` (default :func:`cluster_nodes`) is only asked in that case.

    Args:
        what: the stage's config section (``graph``), named in the error.
        given: the configured ``storage_path`` (``None`` or empty = unset).
        default: the run directory under the stage's output.
        out: the output named in the error.
        num_workers: Ray Train workers of the run.

    Raises:
        StorageError: ``default`` is local, the run has several workers and more than one node is alive.
    """
    if given:
        return given
    if artifacts.is_local(default) and num_workers > 1:
        alive = alive_nodes((nodes or cluster_nodes)())
        if alive > 1:
            raise StorageError(f"{what}: {alive} Ray nodes but the output {out} is local; write the output to "
                               f"shared storage (--out s3://...) or set {what}.storage_path to a location every "
                               "node reaches")
    return default


def remove_run(storage: str, name: str) -> None:
    """Delete the run directory ``storage/name`` when it exists (the next run of that name starts afresh)."""
    import pyarrow.fs as pafs

    path = artifacts.join(storage, name)
    fs, p = pafs.FileSystem.from_uri(path) if "://" in path else (pafs.LocalFileSystem(), os.path.abspath(path))
    if fs.get_file_info(p).type == pafs.FileType.Directory:
        fs.delete_dir(p)
