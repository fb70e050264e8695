"""The event and item-catalog schemas every reader produces and every stage reads.

An event is ``user_id, item_id, timestamp`` (UTC seconds), ``event`` (one of :data:`EVENT_KINDS`),
``value`` (rating or weight, optional) and ``text`` (tag or search text, optional).
"""

from __future__ import annotations

from interestrec.data.rules import REJECT_REASONS as REJECT_REASONS  # every reason, in the order they apply

EVENT_KINDS: tuple[str, ...] = ("view", "click", "rate", "purchase", "tag", "search")
INTERACTION_KINDS: tuple[str, ...] = ("view", "click", "rate", "purchase")
EVENT_COLUMNS: tuple[str, ...] = ("user_id", "item_id", "timestamp", "event", "value", "text")
SPLITS: tuple[str, ...] = ("train", "valid", "test")


def event_schema(with_split: bool = False):
    """pyarrow schema of an event table (``split`` and ``window`` added after ingest)."""
    import pyarrow as pa

    fields = [
        ("user_id", pa.int64()),
        ("item_id", pa.int64()),
        ("timestamp", pa.int64()),
        ("event", pa.string()),
        ("value", pa.float32()),
        ("text", pa.string()),
    ]
    if with_split:
        fields += [("split", pa.string()), ("window", pa.int32())]
    return pa.schema(fields)


def item_schema(description: bool = False):
    """pyarrow schema of the item catalog; with ``description`` the trailing nullable ``description`` column the
    ingest stage writes (free catalog text such as a product's brand and description; null where a format has
    none)."""
    import pyarrow as pa

    fields = [
        ("item_id", pa.int64()),
        ("title", pa.string()),
        ("year", pa.int32()),
        ("genres", pa.list_(pa.string())),
        ("tags", pa.list_(pa.string())),
    ]
    return pa.schema(fields + ([("description", pa.string())] if description else []))


def raw_event_schema():
    """Columns of a reader's raw event rows: every field as text, plus provenance and an early reject reason."""
    import pyarrow as pa

    return pa.schema(
        [("source", pa.string()), ("record", pa.int64()), ("line", pa.int64())]
        + [(c, pa.string()) for c in EVENT_COLUMNS]
        + [("reason", pa.string()), ("raw", pa.string())]
    )
