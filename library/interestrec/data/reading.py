"""The reader interface: what a reader returns and the text-file parsing every format shares.

A reader turns a dataset location into a :class:`Reading`: raw event datasets (Ray Data, rows in
:func:`interestrec.data.schema.raw_event_schema`: every field as text, the source file, record and line
numbers and an early reject ``reason`` such as ``undecodable_bytes``), the item catalog (``item_id`` as
the original id text) and the catalog's own rejects, plus an independent record count per file. Files are
parsed in Ray tasks, one per file, records numbered continuously within each file; counts run as separate
tasks. Validation, id mapping, de-duplication, splitting and windowing are the same for every format.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from interestrec.data.config import IngestConfig
from interestrec.data.errors import DataError
from interestrec.data.records import Record
from interestrec.data.sources import SourceFile

RECORDS_PER_BATCH = 200_000
RAW_COLUMNS = ("record", "line", "user_id", "item_id", "timestamp", "event", "value", "text", "reason", "raw")


@dataclass
class Reading:
    """What a reader returns.

    Attributes:
        events: raw event datasets (``ray.data.Dataset``) by group name (rows carry their source file).
        files: every event file read, by source name (so files without records still appear).
        items: the item catalog (``pyarrow.Table`` in the item schema with ``item_id`` as string) or ``None``.
        live_items: without a catalog, an exported live catalogue (:mod:`interestrec.data.livecatalog`) in the
            same form: its items join the run's items, events on other items stay accepted; else ``None``.
        item_rows: per catalog file, ``(rows_read, rejected rows as a pyarrow Table with reason)``.
        expected: per file, the record count of the independent counting pass (int or Ray ObjectRef).
        id_type: ``int`` when the format's ids are integers by definition (MovieLens), else ``auto``.
        tags_from_events: fill the catalog's ``tags`` from accepted ``tag`` events.
        ignored: hidden files passed over (``_SUCCESS``, ``.crc``…).
    """

    events: dict[str, object]
    files: list[str] = field(default_factory=list)
    items: object | None = None
    live_items: object | None = None
    item_rows: dict[str, tuple[int, object]] = field(default_factory=dict)
    expected: dict[str, object] = field(default_factory=dict)
    id_type: str = "auto"
    tags_from_events: bool = False
    ignored: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class TextFormat:
    """How a text file is split into records (see :func:`interestrec.data.records.parse_records`)."""

    delimiter: str = ","
    quoting: bool = True
    header: bool = True
    encoding: str = "utf-8"
    json: bool = False
    literal: bool = False  # JSON lines whose records may also be Python literal dicts (Amazon 2014 metadata)
    as_dict: bool = False  # hand ``to_event`` ``[{header: field}]`` instead of the field list


def raw_batch(rows: list[tuple], source: str) -> dict:
    """Columns of a raw event batch from ``(record, line, user, item, ts, event, value, text, reason, raw)``."""
    import numpy as np

    if not rows:
        out = {c: np.array([], dtype=object) for c in RAW_COLUMNS}
    else:
        out = {c: np.array(v, dtype=object) for c, v in zip(RAW_COLUMNS, zip(*rows))}
    out["record"] = out["record"].astype(np.int64)
    out["line"] = out["line"].astype(np.int64)
    out["source"] = np.full(len(out["line"]), source, dtype=object)
    return out


def records_of(data: bytes, fmt: TextFormat, max_field_chars: int) -> Iterator[Record]:
    """Records of one file's bytes in ``fmt`` (with ``as_dict``, each record's fields are ``[{header: field}]``)."""
    from interestrec.data.records import parse_json_lines, parse_records

    if fmt.json:
        return parse_json_lines(data, fmt.encoding, literal=fmt.literal)
    head, recs = parse_records(data, delimiter=fmt.delimiter, quoting=fmt.quoting, header=fmt.header,
                               encoding=fmt.encoding, max_field_chars=max_field_chars)
    if not fmt.as_dict or head is None:
        return recs

    def as_dicts():
        for rec in recs:
            if rec.fields is not None:
                rec.fields = [dict(zip(head, rec.fields))] if rec.fields else [{}]
            yield rec

    return as_dicts()


def count_of(data: bytes, fmt: TextFormat) -> int:
    """The independent record count of one file's bytes in ``fmt``."""
    from interestrec.data.records import count_json_lines, count_records

    if fmt.json:
        return count_json_lines(data)
    return count_records(data, delimiter=fmt.delimiter, quoting=fmt.quoting, header=fmt.header)


def _count_task(uri: str, fmt: TextFormat) -> int:
    from interestrec.data.sources import read_bytes

    return count_of(read_bytes(uri), fmt)


def count_later(src: SourceFile, fmt: TextFormat):
    """Start the independent count of ``src`` as a Ray task; returns its ObjectRef."""
    import ray

    return ray.remote(num_cpus=0.25)(_count_task).remote(src.uri, fmt)


def parse_files(batch, fmt: TextFormat, to_event: Callable, max_field_chars: int) -> Iterator[dict]:
    """Ray Data batch function: input rows ``{uri, name}`` → raw event batches of those files' records.

    ``to_event(fields) -> (user, item, ts, event, value, text)`` maps a record's fields (for JSON lines:
    ``[dict]``) onto the event columns; it raises ``ValueError`` for a malformed record.
    """
    from interestrec.data.sources import read_bytes

    for uri, name in zip(batch["uri"], batch["name"]):
        rows = []
        for rec in records_of(read_bytes(str(uri)), fmt, max_field_chars):
            if rec.reason is None:
                try:
                    rows.append((rec.record, rec.line, *to_event(rec.fields), None, rec.raw))
                    continue
                except ValueError:
                    rec.reason = "malformed_record"
            rows.append((rec.record, rec.line, None, None, None, None, None, None, rec.reason, rec.raw))
            if len(rows) >= RECORDS_PER_BATCH:
                yield raw_batch(rows, str(name))
                rows = []
        yield raw_batch(rows, str(name))


def read_text_events(files: list[SourceFile], fmt: TextFormat, to_event: Callable, cfg: IngestConfig):
    """A raw event dataset over ``files`` (one parse task per file) and their independent counts."""
    import ray

    ds = ray.data.from_items([{"uri": f.uri, "name": f.name} for f in files], override_num_blocks=max(len(files), 1))
    ds = ds.map_batches(parse_files, fn_kwargs={"fmt": fmt, "to_event": to_event, "max_field_chars": cfg.max_field_chars},
                        batch_size=1, batch_format="numpy")
    return ds, {f.name: count_later(f, fmt) for f in files}


def head_fields(src: SourceFile, fmt: TextFormat) -> list[str]:
    """The header row of a delimited file (first line; BOM and quotes handled)."""
    import csv

    from interestrec.data.sources import read_first_line

    first = read_first_line(src.uri).removeprefix(b"\xef\xbb\xbf").rstrip(b"\r")
    text = first.decode(fmt.encoding, errors="replace")
    if fmt.quoting and len(fmt.delimiter) == 1:
        return [c.strip() for c in next(csv.reader([text], delimiter=fmt.delimiter), [])]
    return [c.strip() for c in text.split(fmt.delimiter)]


def check_header(src: SourceFile, expected: list[str], fmt: TextFormat | None = None) -> None:
    """Stop with a clear message when a delimited file's header is not ``expected``."""
    got = head_fields(src, fmt or TextFormat())
    if got[: len(expected)] != expected:
        raise DataError(f"{src.uri}: columns {got} do not match the expected header {expected}")



def head_keys(src: SourceFile, literal: bool = False, limit: int = 1 << 20, records: int = 100) -> list[str] | None:
    """The keys seen in the first JSON-lines records of ``src`` (at most ``records`` of its first ``limit``
    bytes), in order of first appearance; ``None`` when none of them is an object."""
    from interestrec.data.records import parse_json_lines
    from interestrec.data.sources import read_head

    data = read_head(src.uri, limit)
    if len(data) >= limit:  # the last line may be cut short: leave it out
        data = data[: data.rfind(b"\n") + 1]
    keys: dict[str, None] = {}
    seen = False
    for n, rec in enumerate(parse_json_lines(data, literal=literal)):
        if n >= records:
            break
        if rec.fields is not None:
            seen = True
            keys.update(dict.fromkeys(str(k) for k in rec.fields[0]))
    return list(keys) if seen else None


def check_json_keys(src: SourceFile, expected: list[str], literal: bool = False, hint: str = "set ingest.columns to map them") -> None:
    """Stop with a clear message when none of the first records of a JSON-lines file has a key of ``expected``
    (a record missing one now and then is a counted ``missing_field`` reject instead)."""
    have = head_keys(src, literal)
    if have is None:
        return  # no object among the first lines: each is a counted malformed_record
    missing = [k for k in expected if k not in have]
    if missing:
        raise DataError(f"{src.uri}: missing keys {missing}; its first records have {have}, expected {expected} ({hint})")
