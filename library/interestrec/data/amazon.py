"""Amazon review logs: the 2014 layout's reader and the sniffing that tells the Amazon layouts from a generic log.

Amazon Reviews 2014 (McAuley et al.): ``reviews_<Category>[_5].json(.gz)``, one JSON object per line
(``reviewerID``, ``asin``, ``overall``, ``unixReviewTime`` in seconds, ``reviewTime``, ``summary``,
``reviewText``…), and optionally ``meta_<Category>.json(.gz)``, one Python-literal dict per line
(``{'asin': …, 'title': …, 'categories': [[…]], 'description': …, 'brand': …}``; strict JSON lines work too).
Meta lines are read with :func:`ast.literal_eval`, never evaluated; a line that does not parse is a counted
``malformed_record`` catalog reject. Reviews become ``rate`` events whose text is ``"<summary>. <reviewText>"``.
Items: the meta ``title`` (the ASIN when it has none), genres from the flattened ``categories`` (distinct, in
order, at most :data:`MAX_GENRES`), ``description`` from the brand and description. An item reviewed but
missing from the meta files joins the catalog titled by its ASIN (one distinct-ASIN task per review file), so
no review is lost as ``unknown_item``; without meta files the items are the ASINs reviewed.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from functools import partial

from interestrec.data.catalog import items_table, parse_catalogs
from interestrec.data.config import IngestConfig
from interestrec.data.errors import DataError
from interestrec.data.generic import scalar_text
from interestrec.data.reading import Reading, TextFormat, check_json_keys, head_keys, read_text_events
from interestrec.data.sources import SourceFile, basename, list_files

JSON_LIKE = TextFormat(json=True, literal=True)
MAX_GENRES = 8
REVIEW_KEYS = ["reviewerID", "asin", "overall"]
_REVIEW_TIME = re.compile(r"^\s*(\d{1,2}) (\d{1,2}), (\d{4})\s*$")
_END = (".", "!", "?", "…", ":", ";")


def review_text(*parts) -> str | None:
    """The non-empty parts (e.g. a review's summary and text) as one text: ``"Great. Works well"``; ``None``
    when every part is empty. A non-scalar part raises ``ValueError`` (a malformed record)."""
    texts = [t.strip() for t in (scalar_text(p) for p in parts) if t and t.strip()]
    if not texts:
        return None
    out = texts[0]
    for t in texts[1:]:
        out += (" " if out.endswith(_END) else ". ") + t
    return out


def _review_day(value) -> str | None:
    """``reviewTime`` (``"09 13, 2009"``) as UTC epoch seconds text; ``None`` when absent."""
    if not isinstance(value, str) or not value.strip():
        return None
    m = _REVIEW_TIME.match(value)
    if m is None:
        raise ValueError(f"reviewTime {value!r} is not 'MM DD, YYYY'")
    month, day, year = (int(g) for g in m.groups())
    return str(int(datetime(year, month, day, tzinfo=timezone.utc).timestamp()))


def review_2014(fields):
    """``to_event`` of a 2014 review: ``(reviewerID, asin, unixReviewTime, "rate", overall, summary + text)``."""
    r = fields[0]
    ts = scalar_text(r.get("unixReviewTime"))
    if ts is None:
        ts = _review_day(r.get("reviewTime"))
    return (scalar_text(r.get("reviewerID")), scalar_text(r.get("asin")), ts, "rate", scalar_text(r.get("overall")),
            review_text(r.get("summary"), r.get("reviewText")))


def categories(value) -> list[str]:
    """Distinct category names of a 2014 ``categories`` value (a list of category paths), in order, at most
    :data:`MAX_GENRES`."""
    if value is None:
        return []
    if not isinstance(value, list | tuple):
        raise ValueError("categories is not a list")
    out: dict[str, None] = {}
    for path in value:
        for name in (path if isinstance(path, list | tuple) else [path]):
            text = scalar_text(name)
            if text and text.strip():
                out.setdefault(text.strip())
    return list(out)[:MAX_GENRES]


def meta_2014(fields, cap: int):
    """``to_item`` of a 2014 meta record: ``(asin, title or asin, genres, "Brand: …. description" cut to cap)``."""
    from interestrec.data.validate import cut_text

    m = fields[0]
    asin = scalar_text(m.get("asin"))
    title = scalar_text(m.get("title"))
    desc = m.get("description")
    if isinstance(desc, list | tuple):  # some dumps hold the description as a list of paragraphs
        desc = " ".join(str(d) for d in desc if isinstance(d, str))
    brand = scalar_text(m.get("brand"))
    text = review_text(f"Brand: {brand.strip()}" if brand and brand.strip() else None, desc)
    return asin, (title or "").strip() or asin, categories(m.get("categories")), cut_text(text, cap) if text else None


def review_items(uri: str, key: str, max_id_chars: int) -> list[str]:
    """The distinct item ids (``key``, stripped as validation strips them) of one review file.

    Ray task of :func:`read_amazon_2014`; records that are not objects or whose id is not a scalar are left to
    the parse, which rejects them.
    """
    from interestrec.data.records import parse_json_lines
    from interestrec.data.sources import read_bytes

    out: set[str] = set()
    for rec in parse_json_lines(read_bytes(uri), literal=True):
        v = rec.fields[0].get(key) if rec.fields is not None else None
        if v is None or isinstance(v, list | tuple | dict | set):
            continue
        text = scalar_text(v).strip()
        if text and len(text) <= max_id_chars:
            out.add(text)
    return sorted(out)


def layout_of(keys: list[str] | None) -> str | None:
    """``amazon-2014`` / ``amazon-2023`` from a review record's keys; ``None`` for any other log."""
    have = set(keys or ())
    if {"reviewerID", "asin"} <= have:
        return "amazon-2014"
    if {"user_id", "parent_asin"} <= have:
        return "amazon-2023"
    return None


def sniff_amazon(files: list[SourceFile]) -> str | None:
    """The Amazon layout of a file list, from the first records of its first review file (its keys), else from
    the file names (``reviews_*`` → 2014) and the meta records' keys; ``None`` when it is not an Amazon log."""
    json_files = [f for f in files if f.kind in (".json", ".jsonl")]
    metas = [f for f in json_files if basename(f.name).startswith("meta_")]
    reviews = [f for f in json_files if f not in metas]
    if reviews:
        kind = layout_of(head_keys(reviews[0], literal=True, records=5))
        if kind:
            return kind
    if not metas:
        return None
    if any(basename(f.name).startswith("reviews_") for f in reviews):
        return "amazon-2014"
    keys = head_keys(metas[0], literal=True, records=5) or []
    return "amazon-2014" if "asin" in keys and "parent_asin" not in keys else "amazon-2023"


def read_amazon_2014(path: str, cfg: IngestConfig) -> Reading:
    """A directory (or one file, or URI) of ``reviews_<Category>[_5].json(.gz)`` and ``meta_<Category>.json(.gz)``."""
    import ray

    files, hidden = list_files(path)
    other = [f.name for f in files if f.kind not in (".json", ".jsonl")]
    if other:
        raise DataError(f"{path}: cannot read {other[0]} as Amazon Reviews 2014 (reviews_<Category>.json(.gz) and "
                        "meta_<Category>.json(.gz)); move it away or set ingest.format")
    metas = [f for f in files if basename(f.name).startswith("meta_")]
    reviews = [f for f in files if f not in metas]
    if not reviews:
        raise DataError(f"{path}: no review files reviews_<Category>.json next to the meta_<Category>.json files")
    for f in reviews:
        check_json_keys(f, REVIEW_KEYS, literal=True, hint="an Amazon 2014 review has reviewerID, asin, overall, "
                        "unixReviewTime, summary, reviewText; set ingest.format for another layout")
    task = ray.remote(num_cpus=0.25)(review_items)
    reviewed = [task.remote(f.uri, "asin", cfg.max_id_chars) for f in reviews] if metas else []
    ds, expected = read_text_events(reviews, JSON_LIKE, review_2014, cfg)
    rows, item_rows, seen = parse_catalogs(metas, JSON_LIKE, partial(meta_2014, cap=cfg.max_text_chars), cfg.max_field_chars)
    if metas:
        missing = sorted(set().union(*ray.get(reviewed)) - seen)
        rows += [(k, k, [], None) for k in missing]
    return Reading(events={"reviews": ds}, files=[f.name for f in reviews], items=items_table(rows, years=False) if metas else None,
                   item_rows=item_rows, expected=expected, id_type="string", ignored=hidden)
