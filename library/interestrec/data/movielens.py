"""Readers for the three public MovieLens layouts.

- ml-latest / ml-latest-small: ``ratings.csv``, ``tags.csv``, ``movies.csv`` (UTF-8 CSV with headers).
- ml-1m: ``ratings.dat``, ``movies.dat`` (``::``-separated, latin-1).
- ml-100k: ``u.data`` (tab-separated), ``u.item`` (pipe-separated, genre flags), latin-1.

Ratings become ``rate`` events with the rating as ``value``; tags become ``tag`` events with the tag as
``text`` and also item attributes (most frequent first).
"""

from __future__ import annotations

import csv
import re
from collections import Counter
from pathlib import Path

from interestrec.data.config import IngestConfig
from interestrec.data.readers import Reading, check_header, decode, raw_batch, read_lines, require_file

_YEAR = re.compile(r"^(.*?)\s*\((\d{4})(?:[-–]\d{0,4})?\)\s*$")
ML100K_GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children", "Comedy", "Crime", "Documentary", "Drama",
    "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western",
)


def split_title(title: str) -> tuple[str, int | None]:
    """``"Heat (1995)"`` → ``("Heat", 1995)``; titles without a year keep ``None``."""
    m = _YEAR.match(title.strip())
    return (m.group(1).strip(), int(m.group(2))) if m else (title.strip(), None)


def _rows_to_items(rows: list[tuple[int, str, list[str]]], tags: dict[int, list[str]] | None = None):
    import pyarrow as pa

    from interestrec.data.schema import item_schema

    ids, titles, years, genres, tag_lists = [], [], [], [], []
    for item_id, title, gs in rows:
        t, y = split_title(title)
        ids.append(item_id)
        titles.append(t)
        years.append(y)
        genres.append(gs)
        tag_lists.append((tags or {}).get(item_id, []))
    return pa.table([ids, titles, years, genres, tag_lists], schema=item_schema())


def _reject_table(rejects: list[tuple[int, str, str]], source: str):
    import pyarrow as pa

    return pa.table(
        {
            "source": [source] * len(rejects),
            "line": pa.array([r[0] for r in rejects], pa.int64()),
            "raw": [r[1] for r in rejects],
            "reason": [r[2] for r in rejects],
        }
    )


def _parse_catalog(path: Path, split_fn, encoding: str, skip_header: bool):
    """Parse a catalog file on the driver: returns (rows_read, [(id, title, genres)], rejects table)."""
    rows, rejects, seen = [], [], set()
    lines = path.read_bytes().split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    start = 1 if skip_header else 0
    for n, raw in enumerate(lines[start:], start=start + 1):
        text = decode(raw.rstrip(b"\r"), encoding)
        if text is None:
            rejects.append((n, repr(raw), "undecodable_bytes"))
            continue
        fields = split_fn(text)
        if fields is None or len(fields) < 2 or not fields[0].strip() or not fields[1].strip():
            rejects.append((n, text, "missing_field"))
            continue
        try:
            item_id = int(fields[0])
        except ValueError:
            rejects.append((n, text, "unparsable_number"))
            continue
        if item_id in seen:
            rejects.append((n, text, "duplicate"))
            continue
        seen.add(item_id)
        rows.append((item_id, fields[1], fields[2] if len(fields) > 2 else []))
    return len(lines) - start, rows, _reject_table(rejects, path.name)


# ---------------------------------------------------------------- ml-latest


def _parse_ml_latest(kind: str):
    def parse(source: str, first: int, lines: list[bytes], encoding: str) -> dict:
        out = []
        for n, raw in enumerate(lines, start=first):
            text = decode(raw, encoding)
            if text is None:
                out.append((n, None, None, None, kind, None, None, "undecodable_bytes", repr(raw)))
                continue
            f = next(csv.reader([text]), [])
            f = (f + [None] * 4)[:4]
            if kind == "rate":  # userId,movieId,rating,timestamp
                out.append((n, f[0], f[1], f[3], "rate", f[2], None, None, text))
            else:  # userId,movieId,tag,timestamp
                out.append((n, f[0], f[1], f[3], "tag", None, f[2], None, text))
        return raw_batch(out, source)

    return parse


def _tag_counts(path: Path) -> dict[int, list[str]]:
    counts: dict[int, Counter] = {}
    with open(path, encoding="utf-8", errors="replace", newline="") as f:
        reader = csv.reader(f)
        next(reader, None)
        for row in reader:
            if len(row) >= 3 and row[1].isdigit() and row[2].strip():
                counts.setdefault(int(row[1]), Counter())[row[2].strip().lower()] += 1
    return {i: [t for t, _ in sorted(c.items(), key=lambda kv: (-kv[1], kv[0]))] for i, c in counts.items()}


def read_ml_latest(path: str, cfg: IngestConfig) -> Reading:
    """ml-latest / ml-latest-small: ratings.csv (+ tags.csv) and movies.csv."""
    root = Path(path)
    ratings = require_file(root / "ratings.csv", "MovieLens ratings.csv with header userId,movieId,rating,timestamp")
    movies = require_file(root / "movies.csv", "MovieLens movies.csv with header movieId,title,genres")
    check_header(ratings, ["userId", "movieId", "rating", "timestamp"])
    check_header(movies, ["movieId", "title", "genres"])
    events = {"ratings.csv": read_lines(ratings, True, _parse_ml_latest("rate"))}
    tags = {}
    if (root / "tags.csv").exists():
        check_header(root / "tags.csv", ["userId", "movieId", "tag", "timestamp"])
        events["tags.csv"] = read_lines(root / "tags.csv", True, _parse_ml_latest("tag"))
        tags = _tag_counts(root / "tags.csv")

    def split_movie(text: str):
        f = next(csv.reader([text]), [])
        if len(f) < 3:
            return None
        genres = [] if f[2].strip() in ("", "(no genres listed)") else [g for g in f[2].split("|") if g]
        return [f[0], f[1], genres]

    n, rows, rejects = _parse_catalog(movies, split_movie, "utf-8", skip_header=True)
    return Reading(events=events, items=_rows_to_items(rows, tags), item_rows={"movies.csv": (n, rejects)})


# ---------------------------------------------------------------- ml-1m


def _parse_delimited(sep: str):
    """Parser for ``user<sep>item<sep>rating<sep>timestamp`` rating lines (ml-1m ``::``, ml-100k tab)."""

    def parse(source: str, first: int, lines: list[bytes], encoding: str) -> dict:
        out = []
        for n, raw in enumerate(lines, start=first):
            text = decode(raw, encoding)
            if text is None:
                out.append((n, None, None, None, "rate", None, None, "undecodable_bytes", repr(raw)))
                continue
            f = (text.split(sep) + [None] * 4)[:4]
            out.append((n, f[0], f[1], f[3], "rate", f[2], None, None, text))
        return raw_batch(out, source)

    return parse


def read_ml_1m(path: str, cfg: IngestConfig) -> Reading:
    """ml-1m: ratings.dat (UserID::MovieID::Rating::Timestamp) and movies.dat (MovieID::Title::Genres), latin-1."""
    root = Path(path)
    ratings = require_file(root / "ratings.dat", "ml-1m ratings.dat (UserID::MovieID::Rating::Timestamp)")
    movies = require_file(root / "movies.dat", "ml-1m movies.dat (MovieID::Title::Genres)")
    first = ratings.open("rb").readline().decode("latin-1")
    if first.strip() and first.count("::") != 3:
        raise _layout_error(ratings, "4 '::'-separated fields UserID::MovieID::Rating::Timestamp", first)

    def split_movie(text: str):
        f = text.split("::")
        return None if len(f) != 3 else [f[0], f[1], [g for g in f[2].split("|") if g]]

    n, rows, rejects = _parse_catalog(movies, split_movie, "latin-1", skip_header=False)
    events = {"ratings.dat": read_lines(ratings, False, _parse_delimited("::"), encoding="latin-1")}
    return Reading(events=events, items=_rows_to_items(rows), item_rows={"movies.dat": (n, rejects)})


# ---------------------------------------------------------------- ml-100k


def read_ml_100k(path: str, cfg: IngestConfig) -> Reading:
    """ml-100k: u.data (user item rating timestamp, tab-separated) and u.item (pipe-separated, genre flags)."""
    root = Path(path)
    data = require_file(root / "u.data", "ml-100k u.data (user id \\t item id \\t rating \\t timestamp)")
    items = require_file(root / "u.item", "ml-100k u.item (id|title|release date|video date|url|19 genre flags)")
    first = data.open("rb").readline().decode("latin-1")
    if first.strip() and first.count("\t") != 3:
        raise _layout_error(data, "4 tab-separated fields user id, item id, rating, timestamp", first)

    def split_item(text: str):
        f = text.split("|")
        if len(f) < 5 + len(ML100K_GENRES):
            return None
        flags = f[5 : 5 + len(ML100K_GENRES)]
        return [f[0], f[1], [g for g, on in zip(ML100K_GENRES, flags) if on.strip() == "1" and g != "unknown"]]

    n, rows, rejects = _parse_catalog(items, split_item, "latin-1", skip_header=False)
    events = {"u.data": read_lines(data, False, _parse_delimited("\t"), encoding="latin-1")}
    return Reading(events=events, items=_rows_to_items(rows), item_rows={"u.item": (n, rejects)})


def _layout_error(path: Path, expected: str, got: str) -> Exception:
    from interestrec.stages import StageError

    return StageError(f"{path}: rows do not match the expected layout ({expected}); first row: {got.strip()[:120]!r}")
