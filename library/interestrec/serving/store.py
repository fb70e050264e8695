"""The fresh-event store: one small interface, two durable backends (no Ray).

- :class:`SQLiteStore` — embedded default for one machine: WAL journal, ``synchronous=FULL``, one
  transaction per batch, so an acknowledged batch is on disk and a failed one left nothing behind.
- :class:`RedisStore` — for a cluster: one Lua script per batch (atomic on the server); run Redis with
  ``appendonly yes`` and ``appendfsync always`` so the reply is sent only after the AOF is fsynced.

Both give every event a store sequence number at acknowledgement: replay and "latest" follow it, not the
wall clock. A batch carries a client key: appending the same key again returns the first
acknowledgement and applies nothing (a retry after a lost reply is safe); the same key with different
events is a :class:`KeyConflict`. The comparison is over the batch as the client sent it: an event without
a timestamp is stamped with the acknowledgement time only when it is stored (:func:`stamped`), so a
retry of such a batch seconds later is still the same batch. :meth:`EventStore.fresh` returns at most the newest ``limit`` events of
a user (the live state's bound); :meth:`EventStore.export` returns everything, in the
``ingest/events.parquet`` column types, for the batch pipeline.

Beside the events, the store keeps the live catalogue (``POST /items``): items with their text and encoded
vector, each write numbered from its own sequence, so a replica reads only what changed since its last
look (:meth:`EventStore.items_since`); :func:`export_items_parquet` writes it out for the next run, and
:func:`export_dataset` writes both as one dataset directory the next run's ingest reads as it is.

Events are keyed by the dataset's **original** user and item ids (an int64 or a string; see
:mod:`interestrec.serving.idtypes`), so a stored event means the same user and item in every artifact
version and the export holds ids the pipeline's readers ingest as they are.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from typing import Protocol

from interestrec.serving.errors import KeyConflict as KeyConflict  # the store interface's errors
from interestrec.serving.errors import StoreError as StoreError
from interestrec.serving.idtypes import ItemId, UserId


@dataclass(frozen=True)
class Event:
    """One stored event (``seq`` assigned by the store at acknowledgement)."""

    seq: int
    batch: str
    user_id: UserId
    item_id: ItemId
    timestamp: int
    event: str
    value: float | None = None
    text: str | None = None


@dataclass(frozen=True)
class Ack:
    """A batch's acknowledgement: its first sequence number, size, and whether it was a replayed retry."""

    batch: str
    first_seq: int
    n: int
    duplicate: bool = False


def fingerprint(user_id: UserId, events: list[dict]) -> str:
    """A digest of a batch's content as sent, to tell a retry from a key reused for different events.

    A missing (``None``) timestamp is part of the content as missing, never as the time it will be stored
    with: two sends of the same batch without timestamps have the same fingerprint whenever they arrive.
    """
    doc = [user_id, [[e["item_id"], e.get("timestamp"), e["event"], e.get("value"), e.get("text")] for e in events]]
    return hashlib.sha256(json.dumps(doc, separators=(",", ":")).encode()).hexdigest()


def stamped(events: list[dict], now: int | None = None) -> list[dict]:
    """The events to store: a missing timestamp becomes ``now`` (default: the current UTC second)."""
    if now is None:
        now = int(time.time())
    return [e if e.get("timestamp") is not None else {**e, "timestamp": now} for e in events]


class EventStore(Protocol):
    """What the serving layer needs from a store."""

    def append(self, user_id: UserId, events: list[dict], key: str) -> Ack:
        """Durably append one batch (``item_id``, ``event``, optional ``timestamp`` — stamped with the
        acknowledgement time when missing —, ``value``, ``text``) under the idempotency ``key``."""

    def fresh(self, user_id: UserId, limit: int) -> list[Event]:
        """The user's newest ``limit`` events, oldest first (by sequence)."""

    def fresh_many(self, user_ids: list[UserId], limit: int) -> list[list[Event]]:
        """:meth:`fresh` for several users in one round trip."""

    def export(self):
        """Every event in sequence order as an Arrow table (``ingest/events.parquet`` types plus ``seq``)."""

    def put_items(self, items: list[dict], key: str) -> Ack:
        """Durably add or replace live-catalogue items (``item_id``, ``title``, ``genres``, ``description``,
        ``vector``) in one batch under the idempotency ``key`` (a retry answers the first acknowledgement)."""

    def items_since(self, seq: int) -> list[StoredItem]:
        """The latest write of every item written after sequence number ``seq`` (0: the whole catalogue)."""

    def item(self, item_id: ItemId) -> StoredItem | None:
        """One live-catalogue item, or ``None``."""

    def export_items(self):
        """The live catalogue (:func:`items_table`)."""

    def close(self) -> None: ...


def events_table(events: list[Event]):
    """Stored events as an Arrow table in ``ingest/events.parquet``'s column types (plus ``seq``, ``batch``)."""
    import pyarrow as pa

    return pa.table({
        "user_id": _id_array([e.user_id for e in events]),
        "item_id": _id_array([e.item_id for e in events]),
        "timestamp": pa.array([e.timestamp for e in events], pa.int64()),
        "event": pa.array([e.event for e in events], pa.string()),
        "value": pa.array([e.value for e in events], pa.float32()),
        "text": pa.array([e.text for e in events], pa.string()),
        "seq": pa.array([e.seq for e in events], pa.int64()),
        "batch": pa.array([e.batch for e in events], pa.string()),
    })


def _id_array(ids: list):
    """int64 for integer ids (and an empty export); string (every id as text) when any id is a string."""
    import pyarrow as pa

    if any(isinstance(i, str) for i in ids):
        return pa.array([str(i) for i in ids], pa.string())
    return pa.array(ids, pa.int64())


def id_key(v: UserId | ItemId) -> int | str:
    """A stored form of an original id that keeps its type: ints as ints, strings prefixed ``s:`` (so a
    numeric-looking string such as ``"007"`` is never coerced to an integer by SQLite's column affinity)."""
    if isinstance(v, str):
        return "s:" + v
    return int(v)


def id_value(k: int | str) -> UserId | ItemId:
    """Inverse of :func:`id_key`."""
    if isinstance(k, str):
        if not k.startswith("s:"):
            raise StoreError(f"malformed stored id {k!r}")
        return k[2:]
    return int(k)


def _check(events: list[dict]) -> None:
    if not events:
        raise ValueError("append: no events")


def export_parquet(store: EventStore, path: str) -> int:
    """Write the store's export as one Parquet event log (atomically) that the pipeline's generic Parquet
    reader ingests as ordinary events (``ingest.format: parquet``); returns the row count."""
    from interestrec import artifacts

    table = store.export()
    artifacts.write_parquet(path, table)
    return table.num_rows


# ---------------------------------------------------------------------------------------------- items
@dataclass(frozen=True)
class StoredItem:
    """One item of the live catalogue (``seq``: the store's item sequence number of its latest write)."""

    seq: int
    batch: str
    item_id: ItemId
    title: str
    genres: tuple[str, ...]
    description: str | None
    vector: tuple[float, ...]


def items_fingerprint(items: list[dict]) -> str:
    """A digest of an items batch as sent (ids, titles, genres, descriptions; not the vectors derived from them)."""
    doc = [[i["item_id"], i["title"], list(i.get("genres") or []), i.get("description")] for i in items]
    return hashlib.sha256(json.dumps(doc, separators=(",", ":")).encode()).hexdigest()


def latest_items(rows: list[StoredItem]) -> list[StoredItem]:
    """The newest write of each item in ``rows`` (sequence order), ordered by sequence."""
    last: dict = {}
    for r in sorted(rows, key=lambda r: r.seq):
        last[id_key(r.item_id)] = r
    return sorted(last.values(), key=lambda r: r.seq)


def items_table(items: list[StoredItem]):
    """The live catalogue as an Arrow table in ``ingest/items.parquet``'s columns (``item_id``, ``title``,
    ``genres``) plus ``description``, ``vector`` (the encoder's, float32) and ``seq``."""
    import pyarrow as pa

    return pa.table({
        "item_id": _id_array([i.item_id for i in items]),
        "title": pa.array([i.title for i in items], pa.string()),
        "genres": pa.array([list(i.genres) for i in items], pa.list_(pa.string())),
        "description": pa.array([i.description for i in items], pa.string()),
        "vector": pa.array([list(i.vector) for i in items], pa.list_(pa.float32())),
        "seq": pa.array([i.seq for i in items], pa.int64()),
    })


def export_items_parquet(store, path: str) -> int:
    """Write the live catalogue (every item's latest write) as one Parquet file (atomically), beside the
    events export, for the next pipeline run; returns the row count."""
    from interestrec import artifacts

    table = store.export_items()
    artifacts.write_parquet(path, table)
    return table.num_rows


EVENTS_FILE = "events.parquet"


def export_dataset(store, directory: str) -> dict[str, int]:
    """Write the store's events (``events.parquet``, :func:`export_parquet`) and live catalogue
    (``live_items.parquet``, :func:`export_items_parquet`) into ``directory``: a generic Parquet dataset the
    next pipeline run ingests with no settings (``--data directory``), the live items joining its catalogue
    with their text (:mod:`interestrec.data.livecatalog`). Returns ``{"events": rows, "items": rows}``."""
    from interestrec import artifacts
    from interestrec.data.livecatalog import LIVE_ITEMS

    return {"events": export_parquet(store, artifacts.join(directory, EVENTS_FILE)),
            "items": export_items_parquet(store, artifacts.join(directory, f"{LIVE_ITEMS}.parquet"))}
