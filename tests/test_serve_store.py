"""The fresh-event store: one contract for both backends (SQLite, a real redis-server), plus real faults:
a full database mid-batch, kill -9 of a writer process mid-load, a Redis kill -9 and restart.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pytest

from fixtures.redis_server import RedisServer

ROOT = Path(__file__).resolve().parents[1]


def ev(item: int, ts: int = 1_700_000_000, kind: str = "view", value: float | None = None, text: str | None = None) -> dict:
    return {"item_id": item, "timestamp": ts, "event": kind, "value": value, "text": text}


class StoreContract:
    """Applied to every backend: ``make_store()`` returns a fresh, empty store."""

    def make_store(self):
        raise NotImplementedError

    def test_append_orders_by_sequence_not_clock(self):
        s = self.make_store()
        a = s.append(7, [ev(1, ts=2_000_000_000), ev(2, ts=0)], "k1")
        b = s.append(7, [ev(3, ts=5)], "k2")  # an older wall-clock time, acknowledged later
        s.append(8, [ev(9)], "k3")
        assert (a.n, b.first_seq) == (2, a.first_seq + 2) and not a.duplicate
        fresh = s.fresh(7, 10)
        assert [e.item_id for e in fresh] == [1, 2, 3]
        assert [e.timestamp for e in fresh] == [2_000_000_000, 0, 5]  # timestamp 0 kept as 0
        assert [e.seq for e in fresh] == sorted(e.seq for e in fresh)
        assert [[e.item_id for e in f] for f in s.fresh_many([8, 7, 99], 10)] == [[9], [1, 2, 3], []]

    def test_fresh_is_bounded_export_keeps_everything(self):
        s = self.make_store()
        for i in range(12):
            s.append(5, [ev(100 + i)], f"b{i}")
        assert [e.item_id for e in s.fresh(5, 4)] == [108, 109, 110, 111]
        t = s.export()
        assert t.num_rows == 12 and t["item_id"].to_pylist() == list(range(100, 112))
        assert t.schema.field("user_id").type == pa.int64() and t.schema.field("timestamp").type == pa.int64()
        assert t.schema.field("value").type == pa.float32() and t.schema.field("event").type == pa.string()

    def test_retry_with_the_same_key_applies_once(self):
        from interestrec.serving.store import KeyConflict

        s = self.make_store()
        batch = [ev(1, kind="rate", value=4.5, text="great"), ev(2, kind="purchase")]
        first = s.append(3, batch, "retry-me")
        again = s.append(3, batch, "retry-me")
        assert again.duplicate and (again.first_seq, again.n) == (first.first_seq, first.n)
        assert len(s.fresh(3, 100)) == 2 and s.export().num_rows == 2
        got = s.fresh(3, 100)[0]
        assert (got.value, got.text, got.event, got.batch) == (4.5, "great", "rate", "retry-me")
        with pytest.raises(KeyConflict, match="retry-me"):
            s.append(3, [ev(99)], "retry-me")
        with pytest.raises(ValueError, match="no events"):
            s.append(3, [], "empty")
        assert s.export().num_rows == 2

    def test_identical_retry_without_timestamps_is_a_duplicate(self):
        """The fingerprint is over the batch as sent: a missing timestamp is not "now" until it is stored."""
        from interestrec.serving.store import KeyConflict

        s = self.make_store()
        batch = [{"item_id": 1, "event": "view"}, {"item_id": 2, "event": "purchase", "timestamp": None}]
        first = s.append(4, batch, "no-ts")
        stored = [e.timestamp for e in s.fresh(4, 10)]
        assert not first.duplicate and len(set(stored)) == 1 and abs(stored[0] - time.time()) < 5  # stamped on store
        time.sleep(1.1)  # a retry in a later second (the clock no longer matches the first stamp)
        again = s.append(4, [dict(e) for e in batch], "no-ts")
        assert again.duplicate and (again.first_seq, again.n) == (first.first_seq, first.n)
        assert [e.timestamp for e in s.fresh(4, 10)] == stored and s.export().num_rows == 2
        with pytest.raises(KeyConflict, match="no-ts"):  # the same key with a timestamp the first send lacked
            s.append(4, [{**batch[0], "timestamp": stored[0]}, batch[1]], "no-ts")
        with pytest.raises(KeyConflict):
            s.append(4, [batch[0]], "no-ts")
        assert s.export().num_rows == 2

    def test_concurrent_identical_sends_apply_once(self):
        """20 clients (each its own connection, as replicas have) send the same key and events at once."""
        import threading
        from concurrent.futures import ThreadPoolExecutor

        s = self.make_store()
        clients = [self.reopen() for _ in range(20)]
        start = threading.Barrier(len(clients))
        batch = [{"item_id": 5, "event": "click"}, {"item_id": 6, "event": "view", "value": None}]

        def send(client):
            start.wait()
            return client.append(9, batch, "same-key")

        with ThreadPoolExecutor(len(clients)) as pool:
            acks = list(pool.map(send, clients))
        assert sum(not a.duplicate for a in acks) == 1  # every client got an acknowledgement …
        assert {(a.first_seq, a.n) for a in acks} == {(acks[0].first_seq, 2)}  # … of the one batch applied
        assert s.export().num_rows == 2 and [e.item_id for e in s.fresh(9, 10)] == [5, 6]
        for c in clients:
            c.close()

    def test_int64_extremes_round_trip(self):
        s = self.make_store()
        big, small = 2**63 - 1, -(2**63)
        s.append(big, [ev(small, ts=2**40)], "x")
        (e,) = s.fresh(big, 5)
        assert (e.user_id, e.item_id, e.timestamp) == (big, small, 2**40)

    def test_survives_reopen(self):
        s = self.make_store()
        s.append(1, [ev(1), ev(2)], "a")
        s.close()
        again = self.reopen()
        assert [e.item_id for e in again.fresh(1, 10)] == [1, 2]
        assert again.append(1, [ev(1), ev(2)], "a").duplicate


class TestSQLiteStore(StoreContract):
    @pytest.fixture(autouse=True)
    def _dir(self, tmp_path):
        self.tmp = tmp_path

    def make_store(self):
        from interestrec.serving.stores import open_store

        self.url = f"sqlite://{self.tmp}/ev-{time.time_ns()}.db"
        return open_store(self.url)

    def reopen(self):
        from interestrec.serving.stores import open_store

        return open_store(self.url)

    def test_wal_and_full_sync(self):
        s = self.make_store()
        assert s._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert s._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL

    def test_full_database_fails_the_batch_and_applies_nothing(self):
        from interestrec.serving.store import StoreError

        s = self.make_store()
        s.append(1, [ev(1)], "ok")
        pages = s._db.execute("PRAGMA page_count").fetchone()[0]
        s._db.execute(f"PRAGMA max_page_count = {pages + 1}")  # the disk is full after one more page
        big = [ev(i, text="x" * 500) for i in range(200)]
        with pytest.raises(StoreError, match="nothing applied"):
            s.append(1, big, "too-big")
        assert [e.item_id for e in s.fresh(1, 1000)] == [1] and s.export().num_rows == 1
        s._db.execute("PRAGMA max_page_count = 1073741823")  # space again: the retry applies exactly once
        assert not s.append(1, big, "too-big").duplicate
        assert s.export().num_rows == 201


class TestRedisStore(StoreContract):
    @pytest.fixture(autouse=True, scope="class")
    @classmethod
    def _server(cls, tmp_path_factory):
        srv = RedisServer(tmp_path_factory.mktemp("redis")).start()
        cls.server = srv
        yield
        srv.stop()

    def make_store(self):
        from interestrec.serving.redis_store import RedisStore

        self.prefix = f"t{time.time_ns()}"
        return RedisStore(self.server.url, prefix=self.prefix)

    def reopen(self):
        from interestrec.serving.redis_store import RedisStore

        return RedisStore(self.server.url, prefix=self.prefix)

    def test_out_of_memory_fails_the_batch_and_applies_nothing(self):
        import redis

        from interestrec.serving.store import StoreError

        s = self.make_store()
        s.append(1, [ev(1)], "ok")
        r = redis.Redis(port=self.server.port)
        r.config_set("maxmemory-policy", "noeviction")
        r.config_set("maxmemory", max(int(r.info("memory")["used_memory"]) - 1024, 1))
        try:
            with pytest.raises(StoreError, match="nothing applied"):
                s.append(1, [ev(i) for i in range(50)], "oom")
        finally:
            r.config_set("maxmemory", 0)
        assert [e.item_id for e in s.fresh(1, 100)] == [1] and s.export().num_rows == 1
        assert not s.append(1, [ev(i) for i in range(50)], "oom").duplicate


WRITER = """
import sys, time
from interestrec.serving.stores import open_store
s = open_store(sys.argv[1])
i = 0
while True:
    s.append(i % 7, [{"item_id": i * 10 + j, "timestamp": i, "event": "view"} for j in range(5)], f"w{i}")
    print(f"w{i}", flush=True)
    i += 1
"""


def _kill_writer_mid_load(url: str, tmp_path: Path) -> list[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "library")}
    p = subprocess.Popen([sys.executable, "-c", WRITER, url], stdout=subprocess.PIPE, env=env, text=True)
    acked = []
    t_end = time.time() + 60
    while len(acked) < 40 and time.time() < t_end:
        line = p.stdout.readline()
        if not line:
            break
        acked.append(line.strip())
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    assert len(acked) >= 40, f"writer acknowledged only {len(acked)} batches"
    return acked


def _check_complete(table, acked: list[str]) -> None:
    batches = table["batch"].to_pylist()
    assert set(acked) <= set(batches)  # every acknowledged batch is there …
    counts = {b: batches.count(b) for b in set(batches)}
    assert set(counts.values()) == {5}  # … and no batch is half-applied
    seqs = table["seq"].to_pylist()
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)


def test_sqlite_writer_killed_mid_load_loses_no_acknowledged_batch(tmp_path):
    from interestrec.serving.stores import open_store

    url = f"sqlite://{tmp_path}/ev.db"
    acked = _kill_writer_mid_load(url, tmp_path)
    _check_complete(open_store(url).export(), acked)


def test_redis_killed_and_restarted_keeps_every_acknowledged_batch(tmp_path):
    from interestrec.serving.store import StoreError
    from interestrec.serving.stores import open_store

    srv = RedisServer(tmp_path / "redis").start()
    try:
        acked = _kill_writer_mid_load(srv.url, tmp_path)  # the writer dies mid-load …
        s = open_store(srv.url)
        s.append(1, [ev(1)], "last-before-crash")
        acked.append("last-before-crash")
        srv.kill()  # … then the server itself, kill -9, right after an acknowledged write
        with pytest.raises(StoreError):
            s.append(1, [ev(2)], "while-down")
        srv.start()  # same port, same AOF directory
        t = open_store(srv.url).export()
        assert "while-down" not in t["batch"].to_pylist()
        _check_complete(t.filter(pa.compute.not_equal(t["batch"], "last-before-crash")), acked[:-1])
        assert "last-before-crash" in t["batch"].to_pylist()
    finally:
        srv.stop()


def test_export_is_ingested_by_the_generic_parquet_reader(tmp_path, ray_local):
    from interestrec.data.config import IngestConfig
    from interestrec.data.generic import read_parquet_log
    from interestrec.serving.store import export_parquet
    from interestrec.serving.stores import open_store

    s = open_store(f"sqlite://{tmp_path}/ev.db")
    s.append(1, [ev(10, ts=0, kind="rate", value=4.0), ev(11, kind="purchase")], "a")
    s.append(2, [ev(12, text="great")], "b")
    out = tmp_path / "export" / "events.parquet"
    assert export_parquet(s, str(out)) == 3
    reading = read_parquet_log(str(out.parent), IngestConfig())
    # the reader hands values on as text; what must survive is the number (4.0 may read back as "4")
    rows = sorted((r["user_id"], r["item_id"], r["timestamp"], r["event"],
                   None if r["value"] is None else float(r["value"]), r["text"])
                  for ds in reading.events.values() for r in ds.take_all())
    assert rows == [("1", "10", "0", "rate", 4.0, None), ("1", "11", "1700000000", "purchase", None, None),
                    ("2", "12", "1700000000", "view", None, "great")]
