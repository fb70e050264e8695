"""Item catalogs: parsed record by record on the driver, every record accepted or rejected with a reason.

A catalog row is ``(item key, title, genres)`` or ``(item key, title, genres, description)``; the key is the original id text (mapped to an index by
the ingest stage through :mod:`interestrec.ids`). The file's independent record count is checked here.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from interestrec.data.errors import DataError
from interestrec.data.reading import TextFormat, count_of, records_of
from interestrec.data.sources import SourceFile, read_bytes

_YEAR = re.compile(r"^(.*?)\s*\((\d{4})(?:[-–]\d{0,4})?\)\s*$")
_INT = re.compile(r"^[+-]?\d+$")


def split_title(title: str) -> tuple[str, int | None]:
    """``"Heat (1995)"`` → ``("Heat", 1995)``; titles without a year keep ``None``."""
    m = _YEAR.match(title.strip())
    return (m.group(1).strip(), int(m.group(2))) if m else (title.strip(), None)


def reject_table(rejects: list[tuple[int, int, str, str]], source: str):
    """Rejects as a table: ``source, record, line, raw, reason``."""
    import pyarrow as pa

    return pa.table({
        "source": pa.array([source] * len(rejects), pa.string()),
        "record": pa.array([r[0] for r in rejects], pa.int64()),
        "line": pa.array([r[1] for r in rejects], pa.int64()),
        "raw": pa.array([r[2] for r in rejects], pa.string()),
        "reason": pa.array([r[3] for r in rejects], pa.string()),
    })


def items_table(rows: list[tuple], years: bool = True):
    """The catalog as a table in the item schema (plus ``description`` when a row carries one), ``item_id`` still
    the original id text."""
    import pyarrow as pa

    keys, titles, ys, genres, descs = [], [], [], [], []
    for key, title, gs, *rest in rows:
        t, y = split_title(title) if years else (title, None)
        keys.append(key)
        titles.append(t)
        ys.append(y)
        genres.append(gs)
        descs.append(rest[0] if rest else None)
    cols = {"item_id": pa.array(keys, pa.string()), "title": pa.array(titles, pa.string()),
            "year": pa.array(ys, pa.int32()), "genres": pa.array(genres, pa.list_(pa.string())),
            "tags": pa.array([[] for _ in keys], pa.list_(pa.string()))}
    if any(d is not None for d in descs):
        cols["description"] = pa.array(descs, pa.string())
    return pa.table(cols)


def parse_catalog(src: SourceFile, fmt: TextFormat, to_item: Callable, max_field_chars: int, int_ids: bool = False,
                  seen: set[str] | None = None):
    """Parse a catalog file: returns ``(records_read, [(key, title, genres[, description])], rejects table)``.

    ``to_item(fields)`` returns ``(key, title, genres[, description])`` or ``None`` for a record missing its id or
    title. ``seen``: keys of catalog files parsed before (shared, updated), so an item listed again is a
    ``duplicate`` reject across files too.
    """
    data = read_bytes(src.uri)
    rows, rejects, n = [], [], 0
    seen = set() if seen is None else seen
    for rec in records_of(data, fmt, max_field_chars):
        n += 1
        reason = rec.reason
        item = None
        if reason is None:
            try:
                item = to_item(rec.fields)
            except ValueError:
                reason = "malformed_record"
        if reason is None and (item is None or item[0] is None or not str(item[0]).strip() or not str(item[1] or "").strip()):
            reason = "missing_field"
        if reason is None and int_ids and not _INT.match(str(item[0]).strip()):
            reason = "unparsable_number"
        if reason is None:
            key = str(item[0]).strip()
            key = str(int(key)) if int_ids else key
            if key in seen:
                reason = "duplicate"
            else:
                seen.add(key)
                rows.append((key, item[1], list(item[2] or []), *item[3:]))
                continue
        rejects.append((rec.record, rec.line, rec.raw, reason))
    expected = count_of(data, fmt)
    if expected != n:
        raise DataError(f"{src.uri}: the independent count found {expected} records but the parser read {n}; "
                         "the file's quoting is inconsistent — fix it or set ingest.format")
    return n, rows, reject_table(rejects, src.name)


def parse_catalogs(files: list[SourceFile], fmt: TextFormat, to_item: Callable, max_field_chars: int
                   ) -> tuple[list[tuple], dict[str, tuple[int, object]], set[str]]:
    """:func:`parse_catalog` over several catalog files, an item's first row winning.

    Returns:
        ``(rows, {file name: (records read, rejects table)}, item keys seen)``.
    """
    rows, item_rows, seen = [], {}, set()
    for f in files:
        n, part, rejects = parse_catalog(f, fmt, to_item, max_field_chars, seen=seen)
        rows += part
        item_rows[f.name] = (n, rejects)
    return rows, item_rows, seen
