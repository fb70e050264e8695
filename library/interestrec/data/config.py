"""Ingest stage configuration."""

from __future__ import annotations

from dataclasses import dataclass, field

from interestrec.configcheck import check_config


@dataclass(frozen=True)
class ColumnMapping:
    """Maps a generic event log's column names onto the event schema (Parquet/CSV/JSONL)."""

    user_id: str = "user_id"
    item_id: str = "item_id"
    timestamp: str = "timestamp"
    event: str | None = "event"
    value: str | None = "value"
    text: str | None = "text"
    default_event: str = "view"

    def __post_init__(self) -> None:
        check_config(self, "ingest.columns")


@dataclass(frozen=True)
class IngestConfig:
    """How raw data is read, validated, split and windowed.

    Attributes:
        format: ``auto`` (detect the layout), ``ml-latest``, ``ml-1m``, ``ml-100k``, ``amazon-2014``,
            ``amazon-2023``, ``recbole``, ``parquet``, ``csv``, ``jsonl`` or ``synthetic``.
        columns: column mapping for the generic formats.
        items_path: optional item-catalog file for the generic formats.
        min_timestamp / max_timestamp: accepted timestamp range (UTC seconds).
        rating_min / rating_max: accepted range of ``value`` for ``rate`` events.
        max_text_chars: a longer event text (review, tag, search) is cut to this many characters (at a word
            boundary when one is near) and counted as ``texts_cut``; the event is kept. Catalog descriptions are
            cut the same way.
        max_id_chars: a record whose user or item id is longer is rejected as ``oversize_id``.
        max_field_chars: a record with any longer field is rejected as ``oversize_text`` while parsing (a guard
            against a runaway quoted field in delimited files).
        id_type: ``auto`` (a column of integer ids is read exactly as int64 — beyond is ``id_out_of_range`` —
            and compact non-negative ids (below ``max(2**20, 8 × distinct ids)``) stay their own index; any other id makes the column's ids strings with
            dense indices), ``int`` (non-integers are ``unparsable_number``) or ``string``.
        timestamp_unit: ``auto`` (epoch s/ms/us/ns told apart by magnitude; stops when values point to more
            than one unit), ``s``, ``ms``, ``us``, ``ns`` or ``iso`` (ISO 8601 strings are accepted
            under every setting).
        window_mode: ``equal_count`` (``n_windows`` windows with equal event counts) or ``fixed``
            (``window_days`` long).
        cutoff: optional global time-cutoff split timestamp (events after it are test).
        read_parallelism: Ray Data read parallelism (-1 = Ray decides).
        partitions: user partitions of the shuffle (0 = one per ~1M input records); each partition's rows are
            processed by one task and written as one ``part-NNNNN.parquet``.
    """

    format: str = "auto"
    columns: ColumnMapping = field(default_factory=ColumnMapping)
    items_path: str | None = None
    min_timestamp: int = 631152000  # 1990-01-01
    max_timestamp: int = 4102444800  # 2100-01-01
    rating_min: float = 0.5
    rating_max: float = 5.0
    max_text_chars: int = 2000
    max_id_chars: int = 256
    max_field_chars: int = 65536
    id_type: str = "auto"
    timestamp_unit: str = "auto"
    window_mode: str = "equal_count"
    n_windows: int = 8
    window_days: int = 365
    cutoff: int | None = None
    read_parallelism: int = -1
    partitions: int = 0

    def __post_init__(self) -> None:
        check_config(self, "ingest", ge={"min_timestamp": 0, "max_text_chars": 1, "max_id_chars": 1, "max_field_chars": 1, "n_windows": 1,
                                         "window_days": 1, "read_parallelism": -1},
                     choices={"window_mode": ("equal_count", "fixed")})
        if not self.min_timestamp < self.max_timestamp or not self.rating_min <= self.rating_max:
            raise ValueError("ingest.min_timestamp must be below ingest.max_timestamp and ingest.rating_min at most "
                             "ingest.rating_max")
        if self.id_type not in ("auto", "int", "string"):
            raise ValueError(f"ingest.id_type must be auto, int or string, got '{self.id_type}'")
        if self.timestamp_unit not in ("auto", "s", "ms", "us", "ns", "iso"):
            raise ValueError(f"ingest.timestamp_unit must be auto, s, ms, us, ns or iso, got '{self.timestamp_unit}'")
        if not isinstance(self.partitions, int) or not 0 <= self.partitions <= 4096:
            raise ValueError(f"ingest.partitions must be an integer in [0, 4096], got {self.partitions!r}")
