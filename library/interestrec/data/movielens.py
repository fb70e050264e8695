"""Readers for the three public MovieLens layouts (local or on object storage, plain or ``.gz``).

- ml-latest / ml-latest-small: ``ratings.csv``, ``tags.csv``, ``movies.csv`` (UTF-8 CSV with headers).
- ml-1m: ``ratings.dat``, ``movies.dat`` (``::``-separated, latin-1).
- ml-100k: ``u.data`` (tab-separated), ``u.item`` (pipe-separated, genre flags), latin-1.

Ratings become ``rate`` events with the rating as ``value``; tags become ``tag`` events with the tag as
``text``. The catalog's ``tags`` attribute is filled by the ingest stage from the accepted tag events.
MovieLens ids are integers by definition (``id_type="int"``).
"""

from __future__ import annotations

from interestrec.data.catalog import items_table, parse_catalog, split_title
from interestrec.data.config import IngestConfig
from interestrec.data.errors import DataError
from interestrec.data.reading import Reading, TextFormat, check_header, head_fields, read_text_events
from interestrec.data.sources import SourceFile, child

__all__ = ["read_ml_100k", "read_ml_1m", "read_ml_latest", "split_title"]

ML100K_GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children", "Comedy", "Crime", "Documentary", "Drama",
    "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western",
)
CSV = TextFormat()
DAT = TextFormat(delimiter="::", quoting=False, header=False, encoding="latin-1")
UDATA = TextFormat(delimiter="\t", quoting=False, header=False, encoding="latin-1")
UITEM = TextFormat(delimiter="|", quoting=False, header=False, encoding="latin-1")


def require(root: str, name: str, expected: str) -> SourceFile:
    """The file ``name`` (or ``name.gz``) under ``root``, or a clear error naming what was expected."""
    src = child(root, name)
    if src is None:
        raise DataError(f"missing input file {root.rstrip('/')}/{name}: expected {expected}")
    return src


def _rating(f: list[str]):  # userId,movieId,rating,timestamp
    f = (f + [None] * 4)[:4]
    return f[0], f[1], f[3], "rate", f[2], None


def _tag(f: list[str]):  # userId,movieId,tag,timestamp
    f = (f + [None] * 4)[:4]
    return f[0], f[1], f[3], "tag", None, f[2]


def read_ml_latest(path: str, cfg: IngestConfig) -> Reading:
    """ml-latest / ml-latest-small: ratings.csv (+ tags.csv) and movies.csv."""
    ratings = require(path, "ratings.csv", "MovieLens ratings.csv with header userId,movieId,rating,timestamp")
    movies = require(path, "movies.csv", "MovieLens movies.csv with header movieId,title,genres")
    check_header(ratings, ["userId", "movieId", "rating", "timestamp"])
    check_header(movies, ["movieId", "title", "genres"])
    events, expected = {}, {}
    events["ratings.csv"], counts = read_text_events([ratings], CSV, _rating, cfg)
    expected.update(counts)
    files = [ratings.name]
    tags = child(path, "tags.csv")
    if tags is not None:
        check_header(tags, ["userId", "movieId", "tag", "timestamp"])
        events["tags.csv"], counts = read_text_events([tags], CSV, _tag, cfg)
        expected.update(counts)
        files.append(tags.name)

    def movie(f: list[str]):
        if len(f) < 3:
            return None
        genres = [] if f[2].strip() in ("", "(no genres listed)") else [g for g in f[2].split("|") if g]
        return f[0], f[1], genres

    n, rows, rejects = parse_catalog(movies, CSV, movie, cfg.max_field_chars, int_ids=True)
    return Reading(events=events, files=files, items=items_table(rows), item_rows={movies.name: (n, rejects)},
                   expected=expected, id_type="int", tags_from_events=True)


def read_ml_1m(path: str, cfg: IngestConfig) -> Reading:
    """ml-1m: ratings.dat (UserID::MovieID::Rating::Timestamp) and movies.dat (MovieID::Title::Genres), latin-1."""
    ratings = require(path, "ratings.dat", "ml-1m ratings.dat (UserID::MovieID::Rating::Timestamp)")
    movies = require(path, "movies.dat", "ml-1m movies.dat (MovieID::Title::Genres)")
    first = head_fields(ratings, DAT)
    if any(first) and len(first) != 4:
        raise _layout_error(ratings, "4 '::'-separated fields UserID::MovieID::Rating::Timestamp", "::".join(first))

    def movie(f: list[str]):
        return None if len(f) != 3 else (f[0], f[1], [g for g in f[2].split("|") if g])

    n, rows, rejects = parse_catalog(movies, DAT, movie, cfg.max_field_chars, int_ids=True)
    ds, expected = read_text_events([ratings], DAT, _rating, cfg)
    return Reading(events={ratings.name: ds}, files=[ratings.name], items=items_table(rows),
                   item_rows={movies.name: (n, rejects)}, expected=expected, id_type="int")


def read_ml_100k(path: str, cfg: IngestConfig) -> Reading:
    """ml-100k: u.data (user item rating timestamp, tab-separated) and u.item (pipe-separated, genre flags)."""
    data = require(path, "u.data", "ml-100k u.data (user id \\t item id \\t rating \\t timestamp)")
    items = require(path, "u.item", "ml-100k u.item (id|title|release date|video date|url|19 genre flags)")
    first = head_fields(data, UDATA)
    if any(first) and len(first) != 4:
        raise _layout_error(data, "4 tab-separated fields user id, item id, rating, timestamp", "\t".join(first))

    def item(f: list[str]):
        if len(f) < 5 + len(ML100K_GENRES):
            return None
        flags = f[5 : 5 + len(ML100K_GENRES)]
        return f[0], f[1], [g for g, on in zip(ML100K_GENRES, flags) if on.strip() == "1" and g != "unknown"]

    n, rows, rejects = parse_catalog(items, UITEM, item, cfg.max_field_chars, int_ids=True)
    ds, expected = read_text_events([data], UDATA, _rating, cfg)
    return Reading(events={data.name: ds}, files=[data.name], items=items_table(rows),
                   item_rows={items.name: (n, rejects)}, expected=expected, id_type="int")


def _layout_error(src: SourceFile, expected: str, got: str) -> Exception:
    return DataError(f"{src.uri}: rows do not match the expected layout ({expected}); first row: {got.strip()[:120]!r}")
