"""Presets for public real-world log layouts.

- Amazon Reviews 2023: ``<Category>.jsonl(.gz)`` reviews (``user_id``, ``parent_asin``, ``rating``,
  ``timestamp`` in milliseconds, ``title``, ``text``) and optionally ``meta_<Category>.jsonl(.gz)``
  (``parent_asin``, ``title``, ``categories``, ``store``, ``description``). Reviews become ``rate`` events whose
  text is ``"<title>. <text>"``; string ids get dense indices. (Amazon 2014: :mod:`interestrec.data.amazon`.)
- RecBole atomic files: ``<name>.inter`` and optional ``<name>.item``, tab-separated with typed headers
  (``user_id:token``, ``item_id:token``, ``rating:float``, ``timestamp:float``; ``movie_title:token_seq``,
  ``release_year:token``, ``class:token_seq``). Without a rating column interactions are ``view`` events.
"""

from __future__ import annotations

from functools import partial

from interestrec.data.amazon import review_text
from interestrec.data.catalog import items_table, parse_catalog, parse_catalogs
from interestrec.data.config import IngestConfig
from interestrec.data.errors import DataError
from interestrec.data.generic import scalar_text
from interestrec.data.reading import Reading, TextFormat, check_json_keys, head_fields, read_text_events
from interestrec.data.sources import basename, list_files

JSONL = TextFormat(json=True)
ATOMIC = TextFormat(delimiter="\t", quoting=False, as_dict=True)


def _amazon_review(fields):
    r = fields[0]
    return (scalar_text(r.get("user_id")), scalar_text(r.get("parent_asin")), scalar_text(r.get("timestamp")), "rate",
            scalar_text(r.get("rating")), review_text(r.get("title"), r.get("text")))


def _amazon_item(fields, cap: int):
    from interestrec.data.validate import cut_text

    m = fields[0]
    cats = m.get("categories") or []
    if not isinstance(cats, list):
        raise ValueError("categories is not a list")
    desc = m.get("description")
    if isinstance(desc, list):
        desc = " ".join(d for d in desc if isinstance(d, str))
    store = scalar_text(m.get("store"))
    text = review_text(f"Store: {store.strip()}" if store and store.strip() else None, desc)
    return (scalar_text(m.get("parent_asin")), scalar_text(m.get("title")) or "", [str(c) for c in cats],
            cut_text(text, cap) if text else None)


def read_amazon_2023(path: str, cfg: IngestConfig) -> Reading:
    """A directory (or URI) holding ``<Category>.jsonl(.gz)`` and ``meta_<Category>.jsonl(.gz)`` pairs, or review
    files alone."""
    files, hidden = list_files(path)
    other = [f.name for f in files if f.kind not in (".jsonl", ".json")]
    if other:
        raise DataError(f"{path}: cannot read {other[0]} as Amazon Reviews 2023 JSON lines")
    metas = [f for f in files if basename(f.name).startswith("meta_")]
    reviews = [f for f in files if f not in metas]
    if not reviews:
        raise DataError(f"{path}: no review files <Category>.jsonl next to the meta_<Category>.jsonl files")
    for f in reviews:
        check_json_keys(f, ["user_id", "parent_asin", "rating", "timestamp"],
                        hint="an Amazon 2023 review has user_id, parent_asin, rating, timestamp; set ingest.format")
    ds, expected = read_text_events(reviews, JSONL, _amazon_review, cfg)
    rows, item_rows, _ = parse_catalogs(metas, JSONL, partial(_amazon_item, cap=cfg.max_text_chars), cfg.max_field_chars)
    return Reading(events={"reviews": ds}, files=[f.name for f in reviews], items=items_table(rows, years=False) if metas else None,
                   item_rows=item_rows, expected=expected, id_type="string" if cfg.id_type == "auto" else cfg.id_type,
                   ignored=hidden)


def _untyped(name: str) -> str:
    return name.split(":", 1)[0].strip()


def read_recbole(path: str, cfg: IngestConfig) -> Reading:
    """RecBole atomic files: every ``*.inter`` under ``path`` and an optional ``*.item``."""
    files, hidden = list_files(path)
    inters = [f for f in files if f.kind == ".inter"]
    item_files = [f for f in files if f.kind == ".item"]
    other = [f.name for f in files if f.kind not in (".inter", ".item", ".user")]
    if other:
        raise DataError(f"{path}: cannot read {other[0]} as a RecBole atomic file (.inter/.item/.user)")
    if not inters:
        raise DataError(f"{path}: no RecBole .inter file")
    head = [_untyped(h) for h in head_fields(inters[0], ATOMIC)]
    for need in ("user_id", "item_id", "timestamp"):
        if need not in head:
            raise DataError(f"{inters[0].uri}: the .inter header {head} has no {need}")
    has_rating = "rating" in head

    def inter(fields):
        r = {_untyped(k): v for k, v in fields[0].items()}
        return r.get("user_id"), r.get("item_id"), r.get("timestamp"), "rate" if has_rating else "view", r.get("rating"), None

    ds, expected = read_text_events(inters, ATOMIC, inter, cfg)
    items, item_rows = None, {}
    if item_files:
        src = item_files[0]

        def item(fields):
            r = {_untyped(k): v for k, v in fields[0].items()}
            title = next((v for k, v in r.items() if "title" in k or k == "name"), "") or ""
            year = next((v for k, v in r.items() if "year" in k), None)
            genres = next((v for k, v in r.items() if k in ("class", "genre", "genres", "categories")), "") or ""
            return r.get("item_id"), f"{title} ({year})" if year and year.strip().isdigit() else title, genres.split()

        n, rows, rejects = parse_catalog(src, ATOMIC, item, cfg.max_field_chars)
        items, item_rows = items_table(rows), {src.name: (n, rejects)}
    return Reading(events={"inter": ds}, files=[f.name for f in inters], items=items, item_rows=item_rows,
                   expected=expected, ignored=hidden)
