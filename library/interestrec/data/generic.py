"""Readers for generic event logs: CSV/TSV, JSON lines and Parquet (files, directories, partition folders, URIs).

Columns are mapped onto the event schema with ``IngestConfig.columns`` (a :class:`ColumnMapping`). Every
value is carried as text into validation (integers exactly, never through float64), so a bad value becomes
a counted reject, not a crash; the text ``"NA"``/``"null"`` stays text. Every file under a directory is read
(recursively, ``date=…/`` partitions included) — a file of another kind stops the run naming it — except a
catalog file named ``items.<ext>`` at the top (or ``ingest.items_path``) and hidden ``.``/``_`` files.
When a file has no event column, every row takes ``columns.default_event``;
a present but empty event is a ``missing_field`` reject. A top-level ``live_items.<ext>`` (the live catalogue
a serving deployment exported) supplements the catalog: :mod:`interestrec.data.livecatalog`.
"""

from __future__ import annotations

import math

import numpy as np

from interestrec.data.catalog import items_table, parse_catalog
from interestrec.data.config import ColumnMapping, IngestConfig
from interestrec.data.errors import DataError
from interestrec.data.livecatalog import LIVE_ITEMS, is_catalog_file, merged
from interestrec.data.reading import Reading, TextFormat, check_json_keys, head_fields, read_text_events
from interestrec.data.sources import SourceFile, list_files

EXTS = {"csv": (".csv", ".tsv"), "jsonl": (".jsonl", ".json", ".ndjson"), "parquet": (".parquet", ".pq")}


def scalar_text(v) -> str | None:
    """A JSON/Arrow scalar as exact text (integral floats as integers); lists and objects are malformed."""
    if v is None:
        return None
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, int | str):
        return str(v)
    if isinstance(v, float):
        if not math.isfinite(v):
            return str(v)
        return str(int(v)) if v.is_integer() and abs(v) < 2**63 else repr(v)
    raise ValueError(f"not a scalar: {type(v).__name__}")


def event_mapper(m: ColumnMapping):
    """``to_event`` for dict records (CSV with a header, JSON lines)."""

    def to_event(fields):
        obj = fields[0]

        def get(name):
            return scalar_text(obj.get(name)) if name else None

        event = get(m.event) if m.event and m.event in obj else m.default_event
        return get(m.user_id), get(m.item_id), get(m.timestamp), event, get(m.value), get(m.text)

    return to_event


def _split(path: str, cfg: IngestConfig, kind: str) -> tuple[list[SourceFile], list[SourceFile | None], list[str]]:
    """The event files, ``[catalog, live catalogue]`` (each a file or ``None``) and the hidden files of ``path``."""
    files, hidden = list_files(path)
    catalog = None
    if cfg.items_path:
        catalog = list_files(cfg.items_path)[0][0]
    for f in files:
        if is_catalog_file(f.name, "items") and catalog is None:
            catalog = f
    live = next((f for f in files if is_catalog_file(f.name, LIVE_ITEMS)), None)
    events = [f for f in files if all(c is None or f.uri != c.uri for c in (catalog, live))]
    other = [f.name for f in events if f.kind not in EXTS[kind]]
    if other:
        raise DataError(f"{path}: cannot read {other[0]} as {kind} ({len(other)} such file(s)); a directory's "
                         f"files are all read — move it away or set ingest.format")
    if not events:
        raise DataError(f"no {kind} event files in {path}")
    return events, [catalog, live], hidden


def _catalogs(srcs: list[SourceFile | None], cfg: IngestConfig):
    """``(items, live_items, item_rows)`` of a :class:`Reading` from ``[catalog, live catalogue]``: with both,
    one catalog (the catalog's rows, then the live items it lacks)."""
    (items, rows), (live, live_rows) = (_catalog(s, cfg) for s in srcs)
    if items is not None and live is not None:
        items, live = merged(items, live), None
    return items, live, {**rows, **live_rows}


def _catalog(src: SourceFile | None, cfg: IngestConfig):
    if src is None:
        return None, {}
    if src.kind in EXTS["parquet"]:  # a typed catalog in the item schema, read as a table (no record checks)
        import pyarrow as pa
        import pyarrow.compute as pc

        from interestrec.artifacts import read_parquet

        t = read_parquet(src.uri)
        if "item_id" not in t.column_names:
            raise DataError(f"{src.uri}: an item catalog needs an item_id column; have {t.column_names}")
        n = t.num_rows
        cols: dict = {"item_id": pc.cast(t["item_id"], pa.string())}
        for c, typ in (("title", pa.string()), ("year", pa.int32()), ("genres", pa.list_(pa.string())),
                       ("tags", pa.list_(pa.string()))):
            cols[c] = pc.cast(t[c], typ) if c in t.column_names else pa.nulls(n, typ)
        if "description" in t.column_names:
            cols["description"] = pc.cast(t["description"], pa.string())
        return pa.table(cols), {}
    fmt = TextFormat(json=src.kind in EXTS["jsonl"], delimiter="\t" if src.kind == ".tsv" else ",", as_dict=True)

    def item(fields):
        obj = fields[0]
        genres = obj.get("genres") or []
        genres = [g for g in genres.split("|") if g] if isinstance(genres, str) else [str(g) for g in genres]
        return scalar_text(obj.get(cfg.columns.item_id, obj.get("item_id"))), scalar_text(obj.get("title")) or "", genres

    n, rows, rejects = parse_catalog(src, fmt, item, cfg.max_field_chars)
    return items_table(rows, years=False), {src.name: (n, rejects)}


def read_csv_log(path: str, cfg: IngestConfig) -> Reading:
    """CSV (or ``.tsv``) event logs with a header row."""
    events, catalog, hidden = _split(path, cfg, "csv")
    m = cfg.columns
    for f in events:
        fmt = TextFormat(delimiter="\t" if f.kind == ".tsv" else ",")
        head = head_fields(f, fmt)
        missing = [c for c in (m.user_id, m.item_id, m.timestamp) if c not in head]
        if missing:
            raise DataError(f"{f.uri}: missing columns {missing}; have {head}, expected {[m.user_id, m.item_id, m.timestamp]} "
                            "(set ingest.columns to map them)")
    datasets, expected = {}, {}
    for delim, exts in ((",", (".csv",)), ("\t", (".tsv",))):
        group = [f for f in events if f.kind in exts]
        if group:
            datasets[exts[0]], counts = read_text_events(group, TextFormat(delimiter=delim, as_dict=True), event_mapper(m), cfg)
            expected.update(counts)
    items, live, item_rows = _catalogs(catalog, cfg)
    return Reading(events=datasets, files=[f.name for f in events], items=items, live_items=live,
                   item_rows=item_rows, expected=expected, ignored=hidden)


def read_jsonl_log(path: str, cfg: IngestConfig) -> Reading:
    """JSON-lines event logs (one object per line; mixed value types per record are fine). A file none of whose
    first records has a key that ``ingest.columns`` names for the user, item or timestamp stops the run."""
    events, catalog, hidden = _split(path, cfg, "jsonl")
    m = cfg.columns
    for f in events:
        check_json_keys(f, [m.user_id, m.item_id, m.timestamp])
    ds, expected = read_text_events(events, TextFormat(json=True), event_mapper(cfg.columns), cfg)
    items, live, item_rows = _catalogs(catalog, cfg)
    return Reading(events={"jsonl": ds}, files=[f.name for f in events], items=items, live_items=live,
                   item_rows=item_rows, expected=expected, ignored=hidden)


def parse_parquet(batch, m: ColumnMapping):
    """Ray Data batch function: ``{uri, name}`` rows → raw event batches (``pyarrow`` tables), each column
    cast to exact text in Arrow."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from interestrec.data.reading import RECORDS_PER_BATCH
    from interestrec.data.sources import _fs

    for uri, name in zip(batch["uri"], batch["name"]):
        fs, p = _fs(str(uri))
        with fs.open_input_file(p) as fh:
            pf = pq.ParquetFile(fh)
            names = pf.schema_arrow.names
            missing = [c for c in (m.user_id, m.item_id, m.timestamp) if c not in names]
            if missing:
                raise DataError(f"{uri}: missing columns {missing}; have {names} (set ingest.columns to map them)")
            first = 1
            for rb in pf.iter_batches(batch_size=RECORDS_PER_BATCH):
                n = rb.num_rows
                nulls = pa.nulls(n, pa.string())

                def col(c, rb=rb, nulls=nulls):
                    if not c or c not in rb.schema.names:
                        return nulls
                    return pc.cast(rb.column(c), pa.string())

                event = col(m.event) if m.event and m.event in names else pc.fill_null(nulls, m.default_event)
                rec = pa.array(np.arange(first, first + n, dtype=np.int64))
                first += n
                yield pa.table({"record": rec, "line": rec, "user_id": col(m.user_id), "item_id": col(m.item_id),
                                "timestamp": col(m.timestamp), "event": event, "value": col(m.value), "text": col(m.text),
                                "reason": nulls, "raw": nulls, "source": pc.fill_null(nulls, str(name))})


def read_parquet_log(path: str, cfg: IngestConfig) -> Reading:
    """Parquet event logs (a file, a directory or partition folders of ``*.parquet``); counts from the footers."""
    events, catalog, hidden = _split(path, cfg, "parquet")
    return _parquet_reading(events, catalog, hidden, cfg)


def _parquet_reading(events: list[SourceFile], catalog: list[SourceFile | None], hidden: list[str],
                     cfg: IngestConfig) -> Reading:
    import pyarrow.parquet as pq
    import ray

    from interestrec.data.sources import _fs

    expected = {}
    m = cfg.columns
    for f in events:  # the footers on the driver: the counts, and a mapping that misses stops here, not in a task
        fs, p = _fs(f.uri)
        with fs.open_input_file(p) as fh:
            pf = pq.ParquetFile(fh)
            names = pf.schema_arrow.names
            missing = [c for c in (m.user_id, m.item_id, m.timestamp) if c not in names]
            if missing:
                raise DataError(f"{f.uri}: missing columns {missing}; have {names}, expected {[m.user_id, m.item_id, m.timestamp]} "
                                "(set ingest.columns to map them)")
            expected[f.name] = pf.metadata.num_rows
    ds = ray.data.from_items([{"uri": f.uri, "name": f.name} for f in events], override_num_blocks=len(events))
    ds = ds.map_batches(parse_parquet, fn_kwargs={"m": cfg.columns}, batch_size=1, batch_format="numpy")
    items, live, item_rows = _catalogs(catalog, cfg)
    return Reading(events={"parquet": ds}, files=[f.name for f in events], items=items, live_items=live,
                   item_rows=item_rows, expected=expected, ignored=hidden)


def read_synthetic(path: str, cfg: IngestConfig) -> Reading:
    """A directory written by :func:`interestrec.data.synthetic.write_shards`: ``events-*.parquet``, the catalog
    ``items.parquet``; the generator's ground truth (``truth.parquet``, ``item_vectors.npy``) is not input
    and is listed under ``ignored_files``. Ids are integers by construction."""
    files, hidden = list_files(path)
    events = [f for f in files if f.name.startswith("events-") and f.kind == ".parquet"]
    catalog = next((f for f in files if f.name == "items.parquet"), None)
    truth = {"truth.parquet", "item_vectors.npy"}
    other = [f.name for f in files if f not in events and f is not catalog and f.name not in truth]
    if other:
        raise DataError(f"{path}: {other[0]} is not part of the synthetic layout (events-*.parquet, items.parquet)")
    if not events:
        raise DataError(f"no events-*.parquet files in {path}")
    reading = _parquet_reading(events, [catalog, None], hidden + sorted(f.name for f in files if f.name in truth), cfg)
    reading.id_type = "int"
    return reading
