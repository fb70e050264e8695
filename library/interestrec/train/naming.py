"""Ray Train run names keyed by what a run learns from: its inputs' content hash and its config's hash.

The same inputs and config give the same name, so a run interrupted mid-way resumes from its last
checkpoint; new data or a new config give a new name, so an old run's checkpoint is never resumed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from interestrec import artifacts


def run_name(prefix: str, input_key: str, config: Mapping[str, Any]) -> str:
    """``<prefix>-<first 12 of input_key>-<first 12 of the config's hash>``.

    Args:
        input_key: a content hash of the run's inputs (:func:`directory_key`, :func:`content_key`).
        config: what the run's result depends on (dataclasses inside are hashed by their fields).
    """
    return f"{prefix}-{input_key[:12]}-{artifacts.hash_config(config)[:12]}"


def directory_key(path: str) -> str:
    """Content hash of a local directory (``""`` when missing); hash of the listing (paths, sizes,
    modification times) of a remote one."""
    if artifacts.is_local(path):
        return artifacts.hash_files([path]) if artifacts.exists(path) else ""
    import pyarrow.fs as pafs

    fs, p = pafs.FileSystem.from_uri(path)
    infos = fs.get_file_info(pafs.FileSelector(p, recursive=True, allow_not_found=True))
    return artifacts.hash_config(sorted((i.path, i.size, str(i.mtime)) for i in infos if i.type == pafs.FileType.File))


def content_key(arrays: Iterable[np.ndarray], texts: Iterable[str] = ()) -> str:
    """sha256 (hex) of the arrays' bytes in order, then the texts joined by newlines.

    Shapes:
        arrays: any; only their C-order bytes count (not dtype or shape).
    """
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    h.update("\n".join(texts).encode())
    return h.hexdigest()
