"""The embedded fresh-event store: SQLite in WAL mode with ``synchronous=FULL`` (local disk only).

One transaction per batch: the commit (fsynced WAL) happens before :meth:`SQLiteStore.append` returns,
and any error rolls the whole batch back. Several processes on one machine (the Serve replicas) may
open the same file; writers take turns (``busy_timeout``), readers never block.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading

from interestrec.serving.idtypes import UserId
from interestrec.serving.store import (
    Ack,
    Event,
    KeyConflict,
    StoredItem,
    StoreError,
    _check,
    events_table,
    fingerprint,
    id_key,
    id_value,
    items_fingerprint,
    items_table,
    stamped,
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    batch TEXT NOT NULL,
    user_id INTEGER NOT NULL,
    item_id INTEGER NOT NULL,
    timestamp INTEGER NOT NULL,
    event TEXT NOT NULL,
    value REAL,
    text TEXT
);
CREATE INDEX IF NOT EXISTS events_user_seq ON events (user_id, seq);
CREATE TABLE IF NOT EXISTS batches (
    key TEXT PRIMARY KEY,
    user_id INTEGER NOT NULL,
    digest TEXT NOT NULL,
    first_seq INTEGER NOT NULL,
    n INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS items (
    item_id PRIMARY KEY,
    seq INTEGER NOT NULL,
    batch TEXT NOT NULL,
    title TEXT NOT NULL,
    genres TEXT NOT NULL,
    description TEXT,
    vector BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS items_seq ON items (seq);
CREATE TABLE IF NOT EXISTS item_batches (
    key TEXT PRIMARY KEY,
    digest TEXT NOT NULL,
    first_seq INTEGER NOT NULL,
    n INTEGER NOT NULL
);
"""
ITEM_COLUMNS = "seq, batch, item_id, title, genres, description, vector"
COLUMNS = "seq, batch, user_id, item_id, timestamp, event, value, text"


class SQLiteStore:
    """:class:`~interestrec.serving.store.EventStore` over one SQLite file.

    Args:
        path: the database file (its directory is created); local disk, not a network filesystem.
        busy_timeout_ms: how long a writer waits for another process' transaction.
    """

    def __init__(self, path: str, busy_timeout_ms: int = 5000):
        self.path = os.path.abspath(path)
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self._db.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
            mode = self._db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if mode.lower() != "wal":
                raise StoreError(f"SQLite store {self.path}: WAL journal unavailable (got {mode})")
            self._db.execute("PRAGMA synchronous = FULL")
            self._db.executescript(SCHEMA)
        except sqlite3.Error as e:
            raise StoreError(f"SQLite store {self.path}: {e}") from e

    @contextlib.contextmanager
    def _write(self, what: str):
        """One ``BEGIN IMMEDIATE`` transaction under the lock: committed when the block ends still in it (a block
        may roll back itself, for a duplicate), rolled back on any error; SQLite errors become
        :class:`StoreError` ("nothing applied")."""
        with self._lock:
            db = self._db
            try:
                db.execute("BEGIN IMMEDIATE")
                try:
                    yield db
                    if db.in_transaction:
                        db.execute("COMMIT")
                except BaseException:
                    if db.in_transaction:
                        db.execute("ROLLBACK")
                    raise
            except sqlite3.Error as e:
                raise StoreError(f"{what} failed, nothing applied: {e}") from e

    @staticmethod
    def _applied(db, table: str, key: str, digest: str, other: str) -> Ack | None:
        """Inside :meth:`_write`: the first answer for a batch key already in ``table`` (the transaction rolled
        back, nothing written), ``None`` for a new key; the key with another digest: :class:`KeyConflict`."""
        prev = db.execute(f"SELECT digest, first_seq, n FROM {table} WHERE key = ?", (key,)).fetchone()
        if prev is None:
            return None
        db.execute("ROLLBACK")
        if prev[0] != digest:
            raise KeyConflict(f"idempotency key '{key}' was already used for {other}")
        return Ack(key, int(prev[1]), int(prev[2]), duplicate=True)

    def append(self, user_id: UserId, events: list[dict], key: str) -> Ack:
        _check(events)
        digest = fingerprint(user_id, events)  # over the batch as sent, before missing timestamps are stamped
        rows = [(key, id_key(user_id), id_key(e["item_id"]), int(e["timestamp"]), str(e["event"]),
                 None if e.get("value") is None else float(e["value"]), e.get("text")) for e in stamped(events)]
        with self._write("event store write") as db:
            if (ack := self._applied(db, "batches", key, digest, "a different batch")) is not None:
                return ack
            db.executemany("INSERT INTO events (batch, user_id, item_id, timestamp, event, value, text) "
                           "VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
            last = db.execute("SELECT last_insert_rowid()").fetchone()[0]
            first = int(last) - len(rows) + 1
            db.execute("INSERT INTO batches (key, user_id, digest, first_seq, n) VALUES (?, ?, ?, ?, ?)",
                       (key, id_key(user_id), digest, first, len(rows)))
        return Ack(key, first, len(rows))

    def _read(self, sql: str, args: tuple) -> list[Event]:
        with self._lock:
            try:
                rows = self._db.execute(sql, args).fetchall()
            except sqlite3.Error as e:
                raise StoreError(f"event store read failed: {e}") from e
        return [Event(s, b, id_value(u), id_value(i), *rest) for s, b, u, i, *rest in rows]

    def fresh(self, user_id: UserId, limit: int) -> list[Event]:
        rows = self._read(f"SELECT {COLUMNS} FROM events WHERE user_id = ? ORDER BY seq DESC LIMIT ?",
                          (id_key(user_id), int(limit)))
        return rows[::-1]

    def fresh_many(self, user_ids: list[UserId], limit: int) -> list[list[Event]]:
        return [self.fresh(u, limit) for u in user_ids]

    def export(self):
        return events_table(self._read(f"SELECT {COLUMNS} FROM events ORDER BY seq", ()))

    def put_items(self, items: list[dict], key: str) -> Ack:
        import numpy as np

        if not items:
            raise ValueError("put_items: no items")
        digest = items_fingerprint(items)
        with self._write("item store write") as db:
            if (ack := self._applied(db, "item_batches", key, digest, "different items")) is not None:
                return ack
            first = int(db.execute("SELECT COALESCE(MAX(seq), 0) FROM items").fetchone()[0]) + 1
            db.executemany("INSERT OR REPLACE INTO items (item_id, seq, batch, title, genres, description, vector) "
                           "VALUES (?, ?, ?, ?, ?, ?, ?)",
                           [(id_key(i["item_id"]), first + n, key, str(i["title"]), json.dumps(list(i.get("genres") or [])),
                             i.get("description"), np.asarray(i["vector"], np.float32).tobytes())
                            for n, i in enumerate(items)])
            db.execute("INSERT INTO item_batches (key, digest, first_seq, n) VALUES (?, ?, ?, ?)",
                       (key, digest, first, len(items)))
        return Ack(key, first, len(items))

    def _items(self, where: str, args: tuple) -> list[StoredItem]:
        import numpy as np

        with self._lock:
            try:
                rows = self._db.execute(f"SELECT {ITEM_COLUMNS} FROM items {where} ORDER BY seq", args).fetchall()
            except sqlite3.Error as e:
                raise StoreError(f"item store read failed: {e}") from e
        return [StoredItem(s, b, id_value(i), t, tuple(json.loads(g)), d, tuple(np.frombuffer(v, np.float32).tolist()))
                for s, b, i, t, g, d, v in rows]

    def items_since(self, seq: int) -> list[StoredItem]:
        return self._items("WHERE seq > ?", (int(seq),))

    def item(self, item_id) -> StoredItem | None:
        rows = self._items("WHERE item_id = ?", (id_key(item_id),))
        return rows[0] if rows else None

    def export_items(self):
        return items_table(self.items_since(0))

    def close(self) -> None:
        with self._lock:
            self._db.close()
