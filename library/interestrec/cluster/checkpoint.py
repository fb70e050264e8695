"""Per-iteration k-means checkpoints: ``centroids_<iter>.npy`` + ``state.json`` (no pickle).

``state.json`` is written after the npy it names, both atomically, so a crash at any point leaves a
consistent pair; older npy files are removed afterwards. ``directory`` is a local path or any pyarrow
URI (``s3://…``), so a driver on another node reads what rank 0 wrote.
"""

from __future__ import annotations

import os

import numpy as np

from interestrec import artifacts
from interestrec.cluster.lloyd import LoopState

STATE = "state.json"


def write_checkpoint(directory: str, state: LoopState, meta: dict | None = None) -> None:
    """Write ``state`` (centroids after ``state.n_iter`` iterations) under ``directory``."""
    name = f"centroids_{state.n_iter:05d}.npy"
    artifacts.write_npy(artifacts.join(directory, name), state.centroids)
    artifacts.write_json(
        artifacts.join(directory, STATE),
        {"file": name, "n_iter": state.n_iter, "history": state.history, "done": state.done, **(meta or {})},
    )
    import pyarrow.fs as pafs

    fs, root = (pafs.FileSystem.from_uri(directory) if "://" in directory
                else (pafs.LocalFileSystem(), os.path.abspath(directory)))
    for info in fs.get_file_info(pafs.FileSelector(root, allow_not_found=True)):
        if info.base_name.startswith("centroids_") and info.base_name.endswith(".npy") and info.base_name != name:
            try:
                fs.delete_file(info.path)
            except FileNotFoundError:
                pass


def read_checkpoint(directory: str, meta: dict | None = None) -> LoopState | None:
    """The last checkpoint in ``directory``, or ``None`` if there is none or its ``meta`` differs."""
    path = artifacts.join(directory, STATE)
    if not artifacts.exists(path):
        return None
    st = artifacts.read_json(path)
    if any(st.get(key) != value for key, value in (meta or {}).items()):
        return None
    c = np.asarray(artifacts.read_npy(artifacts.join(directory, st["file"])), dtype=np.float32)
    return LoopState(c, int(st["n_iter"]), [float(h) for h in st["history"]], bool(st["done"]))
