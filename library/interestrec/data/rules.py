"""The reject reasons in the order they apply: a row keeps the first reason it earns.

Three groups, in this order:

1. :data:`READER_REASONS` — set by the reader while parsing a record; they win over every later check.
2. :data:`ROW_RULES` — per-row validation of one batch, first broken rule wins. Both validators apply this one
   table through :func:`apply_rules`: :func:`interestrec.data.validate.validate_events` (pandas, the
   reference) and :func:`interestrec.data.validate_arrow.validate_table` (Arrow, the distributed ingest's fast
   path). Each reads its batch into the same :class:`RowFacts` in its own vectorised way; the rules' order,
   reasons and thresholds are defined here only.
3. :data:`DATASET_REASONS` — checks that need the whole dataset (the id type, the timestamp unit, the
   catalog, every row of a user), run by :mod:`interestrec.data.resolve` and the de-duplication.

:data:`REJECT_REASONS` lists every reason once, in that order (``interestrec.data.schema`` re-exports it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from interestrec.data.config import IngestConfig

READER_REASONS: tuple[tuple[str, str], ...] = (
    ("undecodable_bytes", "the record's bytes are not valid in the file's encoding"),
    ("malformed_record", "a stray quote, a wrong field count, invalid JSON or a non-scalar value"),
    ("oversize_text", "a field longer than ingest.max_field_chars"),
)


@dataclass(frozen=True)
class RowFacts:
    """What the row rules read of a batch of ``n`` rows; fields are stripped text (blank when null or only
    whitespace) and the event kind is lower-cased.

    Attributes:
        blank_user / blank_item / blank_ts / blank_event / blank_value / blank_text: the field is blank.
        user_chars / item_chars: characters of the id (0 when blank).
        is_rate / is_tag: the event kind is ``rate`` / ``tag``.
        known_event: the event kind is one of :data:`interestrec.data.schema.EVENT_KINDS`.
        value: the value as a number (NaN when blank or not a number).
        ts: the timestamp's :func:`~interestrec.data.validate.parse_timestamps` dict.

    Shapes:
        every array ``(n,)``: bool (``blank_*``, ``is_*``, ``known_event``), int (``*_chars``), float64
        (``value``); ``ts``: a dict of ``(n,)`` arrays.
    """

    blank_user: np.ndarray
    blank_item: np.ndarray
    blank_ts: np.ndarray
    blank_event: np.ndarray
    blank_value: np.ndarray
    blank_text: np.ndarray
    user_chars: np.ndarray
    item_chars: np.ndarray
    is_rate: np.ndarray
    is_tag: np.ndarray
    known_event: np.ndarray
    value: np.ndarray
    ts: dict[str, np.ndarray]


class Rule(NamedTuple):
    """One row rule: its reject ``reason``, a ``description`` and ``breaks(facts, cfg)``, the rows that break it.

    Shapes:
        ``breaks`` returns an ``(n,)`` bool array for :class:`RowFacts` of ``n`` rows.
    """

    reason: str
    description: str
    breaks: Callable[[RowFacts, IngestConfig], np.ndarray]


def _missing_field(f: RowFacts, cfg: IngestConfig) -> np.ndarray:
    return (f.blank_user | f.blank_item | f.blank_ts | f.blank_event | (f.is_rate & f.blank_value)
            | (f.is_tag & f.blank_text))


def _oversize_id(f: RowFacts, cfg: IngestConfig) -> np.ndarray:
    return (f.user_chars > cfg.max_id_chars) | (f.item_chars > cfg.max_id_chars)


def _unparsable_number(f: RowFacts, cfg: IngestConfig) -> np.ndarray:
    ts = f.ts
    return ~(ts["is_int"] | np.isfinite(ts["float"]) | ts["is_iso"]) | (~f.blank_value & ~np.isfinite(f.value))


def _unknown_event(f: RowFacts, cfg: IngestConfig) -> np.ndarray:
    return ~f.known_event


def _rating_out_of_range(f: RowFacts, cfg: IngestConfig) -> np.ndarray:
    return f.is_rate & ~((f.value >= cfg.rating_min) & (f.value <= cfg.rating_max))


ROW_RULES: tuple[Rule, ...] = (
    Rule("missing_field", "a blank user, item, timestamp or event; a rating without a value; a tag without text",
         _missing_field),
    Rule("oversize_id", "a user or item id longer than ingest.max_id_chars", _oversize_id),
    Rule("unparsable_number", "a timestamp that is neither an integer, a decimal nor an ISO 8601 time; a value "
         "that is not a finite number", _unparsable_number),
    Rule("unknown_event", "an event kind outside interestrec.data.schema.EVENT_KINDS", _unknown_event),
    Rule("rating_out_of_range", "a rating outside [ingest.rating_min, ingest.rating_max]", _rating_out_of_range),
)

DATASET_REASONS: tuple[tuple[str, str], ...] = (
    ("unparsable_number", "an ISO-unit timestamp that is not ISO 8601; an id of an integer column that is not an "
     "integer literal"),
    ("timestamp_out_of_range", "a time outside [ingest.min_timestamp, ingest.max_timestamp] in the dataset's unit"),
    ("id_out_of_range", "an id of an integer column beyond int64"),
    ("unknown_item", "an item the catalog does not list"),
    ("duplicate", "an exact repeat of an earlier event (the first is kept)"),
)

REJECT_REASONS: tuple[str, ...] = tuple(dict.fromkeys(
    [r for r, _ in READER_REASONS] + [r.reason for r in ROW_RULES] + [r for r, _ in DATASET_REASONS]))


def apply_rules(reason: np.ndarray, open_: np.ndarray, facts: RowFacts, cfg: IngestConfig) -> None:
    """Give every row still ``open_`` the reason of the first of :data:`ROW_RULES` it breaks (in place).

    Shapes:
        reason: ``(n,)`` object (a reason or ``None``); open_: ``(n,)`` bool, the rows without a reason yet.
    """
    for rule in ROW_RULES:
        hit = rule.breaks(facts, cfg) & open_
        reason[hit] = rule.reason
        open_[hit] = False
