"""Records, not lines: a CSV/TSV/JSON-lines record parser that never crashes, and an independent counter.

:func:`parse_records` turns a file's bytes into records: quoted fields may hold delimiters, quotes and
newlines (RFC 4180); every record is numbered (``record``, 1 = first after the header) and keeps the
physical line it starts on (``line``, 1-based, the header is line 1) — one number space per file. A record
that cannot be decoded, is malformed (a stray quote), has a field longer than ``max_field_chars`` or has a
different number of fields than the header comes back with a reject reason instead of fields.

:func:`count_records` counts the same file's records by a second, much simpler scan (newlines outside
quoted fields, by regular expression); the ingest stage checks it against accepted + rejected.
"""

from __future__ import annotations

import csv
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass

BOM = "\ufeff"


@dataclass
class Record:
    """One record of a text file.

    Attributes:
        record: 1-based record number within the file (header excluded).
        line: physical line the record starts on (1-based, header included).
        fields: the fields (``None`` when rejected).
        raw: the record's original text (``repr`` of its bytes when undecodable).
        reason: reject reason or ``None``.
    """

    record: int
    line: int
    fields: list[str] | None
    raw: str
    reason: str | None = None


def _lines(data: bytes, encoding: str) -> list[str]:
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    parts = data.split(b"\n")
    if parts and parts[-1] == b"":
        parts.pop()
    return [p.removesuffix(b"\r").decode(encoding, "surrogateescape") + "\n" for p in parts]


_SURROGATE = re.compile("[\udc80-\udcff]")


def _undecodable(text: str) -> bool:
    return _SURROGATE.search(text) is not None


def _raw_of(text: str, encoding: str) -> str:
    return repr(text.encode(encoding, "surrogateescape")) if _undecodable(text) else text.rstrip("\n")


def parse_records(data: bytes, *, delimiter: str = ",", quoting: bool = True, header: bool = True,
                  encoding: str = "utf-8", max_field_chars: int = 65536) -> tuple[list[str] | None, Iterator[Record]]:
    """The header's fields (``None`` without one) and an iterator over the records of a delimited file.

    ``delimiter`` may be several characters (ml-1m's ``::``) when ``quoting`` is off.
    """
    lines = _lines(data, encoding)
    head = None
    start = 0
    if header and lines:
        first = lines[0]
        head = next(csv.reader([first], delimiter=delimiter), []) if quoting and len(delimiter) == 1 else \
            first.rstrip("\n").split(delimiter)
        head = [h.strip() for h in head]
        start = 1
    if quoting and len(delimiter) == 1:
        records = _csv_records(lines, start, delimiter, encoding, max_field_chars, head)
    else:
        records = _plain_records(lines, start, delimiter, encoding, max_field_chars, head)
    return head, records


def _check(fields: list[str], max_field_chars: int, head: list[str] | None) -> str | None:
    if fields and max(len(f) for f in fields) > max_field_chars:
        return "oversize_text"
    if head is not None and fields and len(fields) != len(head):
        return "malformed_record"
    return None


def _plain_records(lines, start, delimiter, encoding, max_field_chars, head) -> Iterator[Record]:
    for n, text in enumerate(lines[start:], start=1):
        raw = _raw_of(text, encoding)
        if _undecodable(text):
            yield Record(n, start + n, None, raw, "undecodable_bytes")
            continue
        body = text.rstrip("\n")
        fields = body.split(delimiter) if body else []
        reason = _check(fields, max_field_chars, head)
        yield Record(n, start + n, None if reason else fields, raw if not reason == "oversize_text" else raw[:2000], reason)


def _csv_records(lines, start, delimiter, encoding, max_field_chars, head) -> Iterator[Record]:
    old = csv.field_size_limit()
    csv.field_size_limit(sys.maxsize)  # oversize fields are rejected below, never raised mid-record
    try:
        reader = csv.reader(iter(lines[start:]), delimiter=delimiter, strict=True)
        done, n = 0, 0
        while True:
            reason = None
            try:
                fields = next(reader)
            except StopIteration:
                return
            except csv.Error:
                fields, reason = None, "malformed_record"
            n += 1
            text = "".join(lines[start + done : start + reader.line_num])
            first_line, done = start + done + 1, reader.line_num
            if _undecodable(text):
                reason = "undecodable_bytes"
            elif reason is None:
                reason = _check(fields, max_field_chars, head)
            raw = _raw_of(text, encoding)
            yield Record(n, first_line, None if reason else fields, raw[:2000] if reason == "oversize_text" else raw, reason)
    finally:
        csv.field_size_limit(old)


def _literal(text: str):
    """A Python-literal record (``{'asin': 'x', 'price': 3.17}``), parsed without evaluating code."""
    import ast
    import warnings

    with warnings.catch_warnings():  # '\d' in a literal string is only a SyntaxWarning: the value stays as written
        warnings.simplefilter("ignore", SyntaxWarning)
        try:
            return ast.literal_eval(text.strip())
        except (ValueError, TypeError, SyntaxError, RecursionError, MemoryError):
            return None


def parse_json_lines(data: bytes, encoding: str = "utf-8", literal: bool = False) -> Iterator[Record]:
    """Records of a JSON-lines file: one object per non-blank line; ``fields`` holds ``[dict]``.

    Undecodable lines → ``undecodable_bytes``; invalid JSON or a non-object → ``malformed_record``. With
    ``literal``, a line that is not JSON may be a Python literal dict instead (Amazon 2014 metadata), read with
    :func:`ast.literal_eval` (never evaluated as code).
    """
    import json

    for n, text in enumerate(_lines(data, encoding), start=1):
        if not text.strip():
            continue
        raw = _raw_of(text, encoding)
        if _undecodable(text):
            yield Record(n, n, None, raw, "undecodable_bytes")
            continue
        try:
            obj = json.loads(text)
        except ValueError:
            obj = _literal(text) if literal else None
        if not isinstance(obj, dict):
            yield Record(n, n, None, raw[:2000], "malformed_record")
            continue
        yield Record(n, n, [obj], raw)


def count_records(data: bytes, *, delimiter: str = ",", quoting: bool = True, header: bool = True) -> int:
    """Records in a delimited file by an independent scan: newlines outside quoted fields, plus an unterminated
    last line, minus the header. A quoted field starts with ``"`` at the start of a line or after a delimiter."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    n = data.count(b"\n")
    if quoting and len(delimiter) == 1:
        d = re.escape(delimiter.encode())
        quoted = re.compile(rb'(?:(?<=' + d + rb')|(?<=\n)|\A)"(?:[^"]|"")*(?:"|\Z)')
        open_at_end = False
        for m in quoted.finditer(data):
            g = m.group()
            n -= g.count(b"\n")
            open_at_end = m.end() == len(data) and (len(g) == 1 or not g.endswith(b'"'))
        if data and (open_at_end or not data.endswith(b"\n")):
            n += 1  # an unterminated last line, or a file ending inside an unterminated quoted field
    elif data and not data.endswith(b"\n"):
        n += 1
    return max(n - (1 if header and data else 0), 0)


def count_json_lines(data: bytes) -> int:
    """Non-blank lines of a JSON-lines file (each is one record)."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    return sum(1 for ln in data.split(b"\n") if ln.strip())
