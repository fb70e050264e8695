"""The per-window user vectors of ``encode/users.parquet`` without holding them all in the driver.

The driver reads only ``user_id``, ``window`` and ``n_events`` (:func:`window_users`); a window's
vectors are read on their own (:func:`read_window_vectors`, for windows clustered in the driver), go
from the files to the k-means actors through the object store, one read task per file
(:class:`WindowRows`, :func:`window_blocks`), or are sampled by user
(:func:`read_user_vectors`, for the plots). Every read goes through ``artifacts.parquet_files``, so a
single file and a directory dataset read alike.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from interestrec import artifacts


def _read(path: str, columns: list[str], keep: Callable[[Any], Any], needs: list[str]) -> Any:
    """The ``columns`` of the rows of every file of ``path`` where ``keep(batch)`` (a boolean mask over a
    record batch with ``columns + needs``) holds, in file order. Streams small batches, so the transient
    memory is a batch, not a row group."""
    import pyarrow as pa
    import pyarrow.fs as pafs
    import pyarrow.parquet as pq

    batches = []
    for f in artifacts.parquet_files(path):
        if "://" in f and not f.startswith("file://"):
            fs, p = pafs.FileSystem.from_uri(f)
            src = fs.open_input_file(p)
        else:
            src = f.removeprefix("file://")
        pf = pq.ParquetFile(src)
        schema = pa.schema([pf.schema_arrow.field(c) for c in columns])
        for b in pf.iter_batches(batch_size=8192, columns=list(dict.fromkeys(columns + needs))):
            batches.append(b.filter(keep(b)).select(columns))
    return pa.Table.from_batches(batches, schema=schema)


def _in_window(window: int | None, min_events: int) -> Callable[[Any], Any]:
    """Mask of the rows of ``window`` (``None``: every window ``>= 0``) with ``n_events >= min_events``."""
    import pyarrow.compute as pc

    def keep(b):
        w = pc.greater_equal(b["window"], 0) if window is None else pc.equal(b["window"], window)
        return pc.and_(w, pc.greater_equal(b["n_events"], min_events))

    return keep


def window_users(path: str, min_events: int) -> dict[int, np.ndarray]:
    """``window → user ids`` (file order) of the per-window rows with ``n_events >= min_events``.

    Shapes:
        each value: ``(n_w,)`` int64.
    """
    t = _read(path, ["user_id", "window"], _in_window(None, min_events), ["n_events"])
    w = t.column("window").to_numpy()
    u = t.column("user_id").to_numpy().astype(np.int64)
    return {int(x): u[w == x] for x in np.unique(w).tolist()}


def read_window_vectors(path: str, window: int, min_events: int) -> tuple[np.ndarray, np.ndarray]:
    """One window's ``(user_ids, vectors)`` in file order (the rows :func:`window_users` lists).

    Shapes:
        user_ids: ``(n,)``; vectors: ``(n, d)`` float32.
    """
    t = _read(path, ["user_id", "vector"], _in_window(window, min_events), ["window", "n_events"])
    return t.column("user_id").to_numpy().astype(np.int64), artifacts.arrow_to_vectors(t.column("vector"))


def read_user_vectors(path: str, window: int, user_ids: np.ndarray) -> np.ndarray:
    """The vectors of ``user_ids`` in one window, in the order of ``user_ids`` (a sample, for plots).

    Shapes:
        user_ids: ``(s,)``, all present in the window; output ``(s, d)`` float32.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    wanted = pa.array(np.asarray(user_ids, np.int64))
    t = _read(path, ["user_id", "vector"], lambda b: pc.and_(pc.equal(b["window"], window), pc.is_in(b["user_id"], wanted)),
              ["window"])
    return artifacts.arrow_to_vectors(t.column("vector"))[align(t.column("user_id").to_numpy(), user_ids)]


@dataclass(frozen=True)
class WindowRows:
    """One window's rows of ``users.parquet``, left where they are until a fit reads them (:func:`window_blocks`).

    Shapes:
        user_ids: ``(n,)`` — the window's users in file order; a fit's labels are returned in this order.
    """

    path: str
    window: int
    min_events: int
    user_ids: np.ndarray

    def __len__(self) -> int:
        return len(self.user_ids)


def window_blocks(rows: WindowRows, num_actors: int) -> list:
    """Object refs to the window's ``user_id, vector`` rows, one read task per users file, in the order
    ``DistributedKMeans.fit`` shards them (:func:`interestrec.cluster.sources.file_blocks`)."""
    from interestrec.cluster.sources import file_blocks

    flt = [("window", "=", rows.window), ("n_events", ">=", rows.min_events)]
    return file_blocks(artifacts.parquet_files(rows.path), ["user_id", "vector"], flt, num_actors)


def align(ids: np.ndarray, user_ids: np.ndarray) -> np.ndarray:
    """Positions in ``ids`` of each of ``user_ids`` (``ids[align(ids, user_ids)] == user_ids``).

    Raises:
        ValueError: a user of ``user_ids`` is not in ``ids``.

    Shapes:
        ids: ``(n,)`` distinct; user_ids: ``(m,)``; output ``(m,)``.
    """
    ids, user_ids = np.asarray(ids), np.asarray(user_ids)
    if len(ids) == 0:
        if len(user_ids):
            raise ValueError("result ids do not cover the window's users")
        return np.zeros(0, np.int64)
    order = np.argsort(ids, kind="stable")
    pos = np.minimum(np.searchsorted(ids[order], user_ids), len(ids) - 1)
    if not np.array_equal(ids[order][pos], user_ids):
        raise ValueError("result ids do not cover the window's users")
    return order[pos]


def plot_sample(n: int, size: int, seed: int) -> np.ndarray:
    """Sorted positions of a seeded sample of ``min(size, n)`` of ``n`` users (for the plots)."""
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n, min(size, n), replace=False))
