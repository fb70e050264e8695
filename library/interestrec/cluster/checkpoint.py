"""Per-iteration k-means checkpoints: ``centroids_<iter>.npy`` + ``state.json`` (no pickle).

``state.json`` is written after the npy it names, both atomically, so a crash at any point leaves a
consistent pair; older npy files are removed afterwards.
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
    if artifacts.is_local(directory):
        for f in os.listdir(directory):
            if f.startswith("centroids_") and f.endswith(".npy") and f != name:
                try:
                    os.remove(os.path.join(directory, f))
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
