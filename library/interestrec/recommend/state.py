"""Real-time user state: fresh events applied with decay, a durable append-only log, replay (no Ray).

A user's state after fresh events is their interest vectors scaled by ``decay_factor`` plus one new
interest (the events' recency- and kind-weighted mean item vector), the cluster nearest to that fresh
vector, and the items they touched (filtered from later recommendations).

The log lives under the artifact directory (``<root>/events/``) on any pyarrow filesystem as JSON-lines
segments, one line per event in the ``ingest/events.parquet`` schema (``user_id``, ``item_id``,
``timestamp``, ``event``, ``value``, ``text``) plus ``batch`` / ``n`` so a batch is replayed only when
complete — the batch pipeline can read it as ordinary events. Local files are appended, flushed and
fsynced before :meth:`EventLog.append` returns; on object stores every append is its own segment
(durable once the stream closes).
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from interestrec import artifacts
from interestrec.encode.pooling import EVENT_WEIGHT


@dataclass
class UserState:
    """A user's real-time state.

    Shapes:
        interests: ``(m, d)`` float32 unit rows.
    """

    interests: np.ndarray
    cluster: int
    history: list[int] = field(default_factory=list)  # item ids touched by fresh events, oldest first
    events: int = 0


def events_vector(item_vecs: np.ndarray, kinds: list[str], timestamps: np.ndarray, half_life_days: float) -> np.ndarray:
    """Recency-decayed, kind-weighted mean of ``item_vecs``, unit length (zeros when empty).

    Shapes:
        item_vecs: ``(n, d)``; timestamps: ``(n,)`` seconds; returns ``(d,)`` float32.
    """
    if len(item_vecs) == 0:
        return np.zeros(item_vecs.shape[1], np.float32)
    ts = np.asarray(timestamps, np.float64)
    w = np.array([EVENT_WEIGHT.get(k, 0.5) for k in kinds]) * np.power(0.5, (ts.max() - ts) / (half_life_days * 86400.0))
    v = (w[:, None] * item_vecs).sum(0)
    return (v / max(float(np.linalg.norm(v)), 1e-12)).astype(np.float32)


def nearest_cluster(centroids: np.ndarray, vector: np.ndarray) -> int:
    """Index of the centroid with the highest cosine to ``vector``. Shapes: centroids ``(K, d)``, vector ``(d,)``."""
    c = centroids / np.maximum(np.linalg.norm(centroids, axis=1, keepdims=True), 1e-12)
    return int(np.argmax(c @ vector))


def apply_events(base: UserState, item_vecs: np.ndarray, item_ids: list[int], kinds: list[str], timestamps: list[float],
                 centroids: np.ndarray, decay_factor: float = 0.7, half_life_days: float = 180.0,
                 max_interests: int = 8) -> UserState:
    """The state after fresh events: old interests × ``decay_factor``, the events' vector as the newest interest.

    At most ``max_interests`` interests are kept (the oldest fresh ones are dropped first).

    Shapes:
        item_vecs: ``(n, d)`` vectors of the events' items, in event order.
    """
    if not 0.0 < decay_factor <= 1.0:
        raise ValueError(f"decay_factor must be in (0, 1], got {decay_factor}")
    fresh = events_vector(item_vecs, kinds, np.asarray(timestamps, np.float64), half_life_days)
    old = base.interests * decay_factor
    its = np.vstack([old, fresh[None, :]]) if len(old) else fresh[None, :]
    if len(its) > max_interests:
        its = np.vstack([its[: max_interests - 1], its[-1:]]) if max_interests > 1 else its[-1:]
    its = its / np.maximum(np.linalg.norm(its, axis=1, keepdims=True), 1e-12)
    return UserState(its.astype(np.float32), nearest_cluster(centroids, fresh), base.history + list(map(int, item_ids)),
                     base.events + len(item_ids))


class EventLog:
    """Append-only, durable event log under ``<root>/events/`` (local path or pyarrow filesystem URI)."""

    def __init__(self, root: str):
        self.dir = artifacts.join(root, "events")
        self.local = artifacts.is_local(root)
        artifacts.makedirs(self.dir)
        self._lock = threading.Lock()
        self._segment = f"seg-{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.jsonl"

    def _local_path(self, name: str) -> str:
        p = artifacts.join(self.dir, name)
        return p[len("file://"):] if p.startswith("file://") else p

    def append(self, user_id: int, events: list[dict]) -> str:
        """Durably append one batch of a user's events; returns the batch id. Returns only after fsync.

        Each event needs ``item_id``, ``timestamp`` (seconds) and ``event``; ``value`` / ``text`` are optional.
        """
        if not events:
            raise ValueError("append: no events")
        batch = uuid.uuid4().hex
        lines = "".join(json.dumps({"user_id": int(user_id), "item_id": int(e["item_id"]), "timestamp": int(e["timestamp"]),
                                    "event": str(e["event"]), "value": e.get("value"), "text": e.get("text"),
                                    "batch": batch, "n": len(events)}) + "\n" for e in events).encode()
        with self._lock:
            if self.local:
                fd = os.open(self._local_path(self._segment), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
                try:
                    view = memoryview(lines)
                    while view:
                        view = view[os.write(fd, view):]
                    os.fsync(fd)
                finally:
                    os.close(fd)
            else:
                fs, p = artifacts._fs_and_path(artifacts.join(self.dir, f"seg-{time.time_ns():020d}-{batch[:8]}.jsonl"))
                with fs.open_output_stream(p) as f:
                    f.write(lines)
        return batch

    def segments(self) -> list[str]:
        """Segment paths, oldest first."""
        import pyarrow.fs as pafs

        fs, d = artifacts._fs_and_path(self.dir)
        infos = fs.get_file_info(pafs.FileSelector(d, allow_not_found=True))
        return sorted(i.path for i in infos if i.type == pafs.FileType.File and i.base_name.endswith(".jsonl"))

    def records(self) -> list[dict]:
        """Every logged event of complete batches, in append order.

        A batch cut short by a crash (fewer lines than its ``n``, or a torn last line) was never
        acknowledged and is skipped; a malformed line elsewhere raises ``ValueError`` naming the segment.
        """
        fs, _ = artifacts._fs_and_path(self.dir)
        out: list[dict] = []
        for seg in self.segments():
            with fs.open_input_stream(seg) as f:
                raw = f.read().decode("utf-8").split("\n")
            recs, counts = [], {}
            for n, line in enumerate(raw):
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    if n >= len(raw) - 2:  # torn tail of an unacknowledged append
                        break
                    raise ValueError(f"event log segment {seg} line {n + 1} is not JSON") from None
                recs.append(rec)
                counts[rec["batch"]] = counts.get(rec["batch"], 0) + 1
            out += [r for r in recs if counts[r["batch"]] == r["n"]]
        return out

    def batches(self) -> list[tuple[int, list[dict]]]:
        """The log grouped back into ``(user_id, events)`` batches, in append order."""
        out: list[tuple[int, list[dict]]] = []
        last = None
        for r in self.records():
            if r["batch"] != last:
                out.append((int(r["user_id"]), []))
                last = r["batch"]
            out[-1][1].append({k: r[k] for k in ("item_id", "timestamp", "event", "value", "text")})
        return out

    def to_table(self):
        """The log as an Arrow table in ``ingest/events.parquet``'s column types (without split/window)."""
        import pyarrow as pa

        recs = self.records()
        return pa.table({
            "user_id": pa.array([r["user_id"] for r in recs], pa.int64()),
            "item_id": pa.array([r["item_id"] for r in recs], pa.int64()),
            "timestamp": pa.array([r["timestamp"] for r in recs], pa.int64()),
            "event": pa.array([r["event"] for r in recs], pa.string()),
            "value": pa.array([r["value"] for r in recs], pa.float32()),
            "text": pa.array([r["text"] for r in recs], pa.string()),
        })


def rebuild(log: EventLog, initial: Callable[[int], UserState],
            apply: Callable[[int, list[dict], UserState], UserState]) -> tuple[dict[int, UserState], int]:
    """Replay the log over the artifact state.

    Args:
        initial: a user's state from the artifacts alone. apply: ``(user_id, events, state) -> new state``.

    Returns:
        ``{user_id: state}`` for every user with logged events, and the number of batches skipped
        because ``initial``/``apply`` raised ``KeyError`` (a user or item the loaded version lacks).
    """
    state: dict[int, UserState] = {}
    skipped = 0
    for uid, events in log.batches():
        try:
            state[uid] = apply(uid, events, state.get(uid) or initial(uid))
        except KeyError:
            skipped += 1
    return state, skipped
