"""The registry of input formats: which reader reads a dataset location (:mod:`interestrec.data.reading`
describes what a reader returns)."""

from __future__ import annotations

from collections.abc import Callable

from interestrec.data import amazon, generic, movielens, presets
from interestrec.data.config import IngestConfig
from interestrec.data.errors import DataError
from interestrec.data.livecatalog import LIVE_ITEMS, is_catalog_file
from interestrec.data.reading import Reading
from interestrec.data.sources import is_dir, list_files, suffix

__all__ = ["Reading", "detect_format", "get_reader"]
JSON_EXTS = (".jsonl", ".json", ".ndjson")


def detect_format(path: str) -> str:
    """Guess the dataset layout of ``path`` (a directory, a file or a URI of either). JSON-lines files are told
    apart by their first records' keys: Amazon 2014 (``reviewerID``, ``asin``), Amazon 2023 (``user_id``,
    ``parent_asin``) or a generic log."""
    files, _ = list_files(path)
    json_like = any(f.kind in JSON_EXTS for f in files)
    if is_dir(path):
        names = {f.name.removesuffix(".gz") for f in files}
        kinds = {f.kind for f in files}
        if "ratings.csv" in names:
            return "ml-latest"
        if "ratings.dat" in names:
            return "ml-1m"
        if "u.data" in names:
            return "ml-100k"
        if ".inter" in kinds:
            return "recbole"
        kind = amazon.sniff_amazon(files) if json_like else None
        if kind:
            return kind
        if any(n.startswith("events-") and n.endswith(".parquet") for n in names):
            return "synthetic"
        logs = {f.kind for f in files if not any(is_catalog_file(f.name, s) for s in ("items", LIVE_ITEMS))} or kinds
        for fmt, exts in (("parquet", (".parquet", ".pq")), ("csv", (".csv", ".tsv")), ("jsonl", (".jsonl", ".json", ".ndjson"))):
            if logs and logs <= set(exts):  # the event files' kind: a catalog file may be of another
                return fmt
        raise DataError(f"cannot tell the format of {path} (file kinds {sorted(kinds)}): expected ratings.csv "
                         "(ml-latest), ratings.dat (ml-1m), u.data (ml-100k), *.inter (recbole), reviews_*.json "
                         "(amazon-2014), <Category>.jsonl + meta_*.jsonl (amazon-2023), events-*.parquet (synthetic) "
                         "or only *.parquet/*.csv/*.jsonl; set ingest.format")
    if json_like:
        kind = amazon.sniff_amazon(files)
        if kind:
            return kind
    kind = suffix(path)
    for fmt, exts in (("parquet", (".parquet", ".pq")), ("csv", (".csv", ".tsv")), ("jsonl", (".jsonl", ".json", ".ndjson"))):
        if kind in exts:
            return fmt
    raise DataError(f"cannot tell the format of {path}; set ingest.format")


def get_reader(fmt: str) -> Callable[[str, IngestConfig], Reading]:
    """The reader function of format ``fmt``."""
    readers: dict[str, Callable] = {
        "ml-latest": movielens.read_ml_latest,
        "ml-1m": movielens.read_ml_1m,
        "ml-100k": movielens.read_ml_100k,
        "parquet": generic.read_parquet_log,
        "csv": generic.read_csv_log,
        "jsonl": generic.read_jsonl_log,
        "synthetic": generic.read_synthetic,
        "amazon-2014": amazon.read_amazon_2014,
        "amazon-2023": presets.read_amazon_2023,
        "recbole": presets.read_recbole,
    }
    if fmt not in readers:
        raise DataError(f"unknown ingest.format '{fmt}'; formats: {', '.join(sorted(readers))}, auto")
    return readers[fmt]
