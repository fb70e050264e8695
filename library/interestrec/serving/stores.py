"""Which event store a URL names (the backends import the interface in :mod:`interestrec.serving.store`,
so the choice between them lives here, above both)."""

from __future__ import annotations

from interestrec.serving.store import EventStore


def open_store(url: str) -> EventStore:
    """``sqlite:///abs/path.db`` / a plain path → :class:`SQLiteStore`; ``redis://host:port/db`` → :class:`RedisStore`."""
    if url.startswith(("redis://", "rediss://", "unix://")):
        from interestrec.serving.redis_store import RedisStore

        return RedisStore(url)
    from interestrec.serving.sqlite_store import SQLiteStore

    return SQLiteStore(url.removeprefix("sqlite://"))
