"""The cluster fresh-event store: Redis, one server-side Lua script per batch.

Run the server with ``appendonly yes`` and ``appendfsync always``: Redis then answers a write only after
its AOF is fsynced, so an acknowledged batch survives a crash or restart. The script checks the
idempotency key, takes a block of sequence numbers and writes the batch atomically; it carries a
``#!lua`` shebang, so Redis refuses to start it when out of memory instead of failing half-way.
All keys share one hash tag (``{prefix}``), so the script also runs on Redis Cluster.
"""

from __future__ import annotations

import json

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

# One script per batch kind, applied once per idempotency key: KEYS[1] = the batch's key, KEYS[4] = the
# sequence counter; a repeat returns the first answer with the duplicate flag. {n}: the batch's size from ARGV,
# {write}: what one element stores at sequence number `s` (ARGV[1] is the batch's digest).
_ONCE = """
local prev = redis.call('HMGET', KEYS[1], 'digest', 'first', 'n')
if prev[1] then return {{prev[1], tonumber(prev[2]), tonumber(prev[3]), 1}} end
local n = {n}
local last = redis.call('INCRBY', KEYS[4], n)
local first = last - n + 1
for i = 1, n do
  local s = first + i - 1
{write}
end
redis.call('HSET', KEYS[1], 'digest', ARGV[1], 'first', first, 'n', n)
return {{ARGV[1], first, n, 0}}
"""

# events: KEYS = batch, user's events, log, event counter; ARGV = digest, then one member per event
APPEND = _ONCE.format(n="#ARGV - 1", write="""\
  local m = string.format('%d', s) .. '|' .. ARGV[i + 1]
  redis.call('ZADD', KEYS[2], s, m)
  redis.call('ZADD', KEYS[3], s, m)""")

# items: KEYS = batch, items hash, items by seq, item counter; ARGV = digest, then (field, doc) pairs
PUT_ITEMS = _ONCE.format(n="(#ARGV - 1) / 2", write="""\
  local field = ARGV[2 * i]
  redis.call('HSET', KEYS[2], field, string.format('%d', s) .. '|' .. ARGV[2 * i + 1])
  redis.call('ZADD', KEYS[3], s, field)""")


class RedisStore:
    """:class:`~interestrec.serving.store.EventStore` on a Redis server.

    Args:
        url: ``redis://host:port/db``. prefix: key namespace (hash tag) for this deployment.
        timeout_s: socket timeout of each call.
    """

    def __init__(self, url: str, prefix: str = "interestrec", timeout_s: float = 5.0):
        import redis

        self._r = redis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
        self._tag = "{" + prefix + "}"
        self._append = self._r.register_script(APPEND)
        self._put_items = self._r.register_script(PUT_ITEMS)
        self._errors = (redis.RedisError,)
        self._response_error = redis.ResponseError
        try:
            self._r.ping()
        except self._errors as e:
            raise StoreError(f"Redis store {url}: {e}") from e

    def _user(self, user_id: UserId) -> str:
        return f"{self._tag}:user:{id_key(user_id)}"

    def append(self, user_id: UserId, events: list[dict], key: str) -> Ack:
        _check(events)
        digest = fingerprint(user_id, events)  # over the batch as sent, before missing timestamps are stamped
        members = [json.dumps({"batch": key, "user_id": id_value(id_key(user_id)), "item_id": id_value(id_key(e["item_id"])),
                               "timestamp": int(e["timestamp"]), "event": str(e["event"]),
                               "value": None if e.get("value") is None else float(e["value"]),
                               "text": e.get("text")}, separators=(",", ":")) for e in stamped(events)]
        keys = [f"{self._tag}:batch:{key}", self._user(user_id), f"{self._tag}:log", f"{self._tag}:seq"]
        return self._once(self._append, keys, [digest, *members], key, "event", "a different batch")

    def _once(self, script, keys: list[str], args: list[str], key: str, what: str, other: str) -> Ack:
        """Run an idempotent batch script (``args[0]`` its digest): store errors as :class:`StoreError` saying
        whether anything may have been applied, a reused key with another digest as :class:`KeyConflict`."""
        try:
            got, first, n, dup = script(keys=keys, args=args)
        except self._response_error as e:  # the server answered: the script did not run (or wrote nothing)
            raise StoreError(f"{what} store write failed, nothing applied: {e}") from e
        except self._errors as e:  # no answer (connection lost, timeout): the script may have run
            raise StoreError(f"{what} store write not confirmed (it may or may not have been applied): {e}") from e
        got = got.decode() if isinstance(got, bytes) else got
        if dup and got != args[0]:
            raise KeyConflict(f"idempotency key '{key}' was already used for {other}")
        return Ack(key, int(first), int(n), duplicate=bool(dup))

    @staticmethod
    def _parse(rows) -> list[Event]:
        out = []
        for m in rows:
            seq, doc = m.split(b"|", 1)
            d = json.loads(doc)
            out.append(Event(int(seq), d["batch"], d["user_id"], d["item_id"], d["timestamp"], d["event"],
                             d["value"], d["text"]))
        return out

    def fresh(self, user_id: UserId, limit: int) -> list[Event]:
        return self.fresh_many([user_id], limit)[0]

    def fresh_many(self, user_ids: list[UserId], limit: int) -> list[list[Event]]:
        try:
            pipe = self._r.pipeline(transaction=False)
            for u in user_ids:
                pipe.zrange(self._user(u), -int(limit), -1)
            rows = pipe.execute()
        except self._errors as e:
            raise StoreError(f"event store read failed: {e}") from e
        return [self._parse(r) for r in rows]

    def export(self):
        try:
            rows = self._r.zrange(f"{self._tag}:log", 0, -1)
        except self._errors as e:
            raise StoreError(f"event store read failed: {e}") from e
        return events_table(self._parse(rows))

    def put_items(self, items: list[dict], key: str) -> Ack:
        if not items:
            raise ValueError("put_items: no items")
        digest = items_fingerprint(items)
        args = [digest]
        for i in items:
            args += [json.dumps(id_key(i["item_id"])), json.dumps(
                {"batch": key, "item_id": id_value(id_key(i["item_id"])), "title": str(i["title"]),
                 "genres": list(i.get("genres") or []), "description": i.get("description"),
                 "vector": [float(x) for x in i["vector"]]}, separators=(",", ":"))]
        keys = [f"{self._tag}:itembatch:{key}", f"{self._tag}:items", f"{self._tag}:items_seq", f"{self._tag}:item_seq"]
        return self._once(self._put_items, keys, args, key, "item", "different items")

    @staticmethod
    def _item(raw) -> StoredItem:
        seq, doc = raw.split(b"|", 1)
        d = json.loads(doc)
        return StoredItem(int(seq), d["batch"], d["item_id"], d["title"], tuple(d["genres"]), d["description"],
                          tuple(d["vector"]))

    def items_since(self, seq: int) -> list[StoredItem]:
        try:
            fields = self._r.zrangebyscore(f"{self._tag}:items_seq", f"({int(seq)}", "+inf")
            raws = self._r.hmget(f"{self._tag}:items", fields) if fields else []
        except self._errors as e:
            raise StoreError(f"item store read failed: {e}") from e
        return sorted((self._item(r) for r in raws if r is not None), key=lambda i: i.seq)

    def item(self, item_id) -> StoredItem | None:
        try:
            raw = self._r.hget(f"{self._tag}:items", json.dumps(id_key(item_id)))
        except self._errors as e:
            raise StoreError(f"item store read failed: {e}") from e
        return None if raw is None else self._item(raw)

    def export_items(self):
        return items_table(self.items_since(0))

    def close(self) -> None:
        self._r.close()
