"""The reader interface and the registry of input formats.

A reader turns a dataset location into a :class:`Reading`: one or more raw event sources (Ray Data
datasets whose rows follow :func:`interestrec.data.schema.raw_event_schema`: every field as text, the
source file and line, and an early reject ``reason`` such as ``undecodable_bytes``) plus the item
catalog and the catalog's own rejects. Validation, de-duplication, splitting and windowing are the same
for every format (``interestrec.data.stage``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from interestrec.data.config import IngestConfig
from interestrec.stages import StageError

LINES_PER_CHUNK = 200_000


@dataclass
class Reading:
    """What a reader returns.

    Attributes:
        events: raw event datasets (``ray.data.Dataset``), each keyed by its source file name.
        items: the item catalog (``pyarrow.Table`` in the item schema) or ``None`` when the format has none.
        item_rows: per catalog file, ``(rows_read, rejected rows as a pyarrow Table with reason)``.
    """

    events: dict[str, object]
    items: object | None = None
    item_rows: dict[str, tuple[int, object]] = field(default_factory=dict)


def require_file(path: Path, expected: str) -> Path:
    """Stop with one clear message when a required input file is missing or unreadable."""
    if not path.is_file():
        raise StageError(f"missing input file {path}: expected {expected}")
    if not os.access(path, os.R_OK):
        raise StageError(f"cannot read input file {path}: check its permissions")
    return path


def check_header(path: Path, expected: list[str], encoding: str = "utf-8") -> None:
    """Stop with a clear message when a CSV file's header is not ``expected``."""
    with open(path, "rb") as f:
        first = f.readline().decode(encoding, errors="replace").strip().lstrip("\ufeff")
    got = [c.strip() for c in first.split(",")]
    if got[: len(expected)] != expected:
        raise StageError(f"{path}: columns {got} do not match the expected header {expected}")


def read_lines(path: Path, skip_header: bool, parse: Callable, encoding: str = "utf-8"):
    """A Ray Data dataset of raw event rows from a line-oriented text file.

    The file is read as bytes (so undecodable lines become counted rejects instead of a crash), split
    into chunks of lines and each chunk is parsed by ``parse(source, first_line_no, lines: list[bytes])``
    returning a raw-event batch (dict of lists). Chunks are spread over the cluster by Ray Data.
    """
    import ray

    source = path.name

    def split_chunks(batch) -> Iterator[dict]:
        for data in batch["bytes"]:
            lines = bytes(data).split(b"\n")
            if lines and lines[-1] == b"":
                lines.pop()
            start = 1 if skip_header else 0
            for lo in range(start, len(lines), LINES_PER_CHUNK):
                chunk = [ln.rstrip(b"\r") for ln in lines[lo : lo + LINES_PER_CHUNK]]
                yield parse(source, lo + 1, chunk, encoding)

    ds = ray.data.read_binary_files(str(path))
    return ds.map_batches(split_chunks, batch_size=1, batch_format="numpy")


def decode(line: bytes, encoding: str) -> str | None:
    """Decode one line strictly; ``None`` when its bytes are not valid in ``encoding``."""
    try:
        return line.decode(encoding)
    except UnicodeDecodeError:
        return None


def raw_batch(rows: list[tuple], source: str) -> dict:
    """Columns of a raw event batch from ``(line, user, item, ts, event, value, text, reason, raw)`` tuples."""
    import numpy as np

    cols = ("line", "user_id", "item_id", "timestamp", "event", "value", "text", "reason", "raw")
    if not rows:
        out = {c: np.array([], dtype=object) for c in cols}
        out["line"] = np.array([], dtype=np.int64)
    else:
        out = {c: np.array(v, dtype=object) for c, v in zip(cols, zip(*rows))}
        out["line"] = out["line"].astype(np.int64)
    out["source"] = np.full(len(out["line"]), source, dtype=object)
    return out


def detect_format(path: str) -> str:
    """Guess the dataset layout of ``path`` (a directory or a file)."""
    p = Path(path)
    if p.is_dir():
        names = {q.name for q in p.iterdir()}
        if "ratings.csv" in names:
            return "ml-latest"
        if "ratings.dat" in names:
            return "ml-1m"
        if "u.data" in names:
            return "ml-100k"
        if any(n.startswith("events-") and n.endswith(".parquet") for n in names):
            return "synthetic"
        if any(n.endswith(".parquet") for n in names):
            return "parquet"
        raise StageError(f"cannot tell the format of {p}: expected ratings.csv (ml-latest), ratings.dat (ml-1m), "
                         "u.data (ml-100k), events-*.parquet (synthetic) or *.parquet; set ingest.format")
    suffix = p.suffix.lower()
    if suffix in (".parquet", ".pq"):
        return "parquet"
    if suffix == ".csv":
        return "csv"
    if suffix in (".jsonl", ".json", ".ndjson"):
        return "jsonl"
    raise StageError(f"cannot tell the format of {p}; set ingest.format")


def get_reader(fmt: str) -> Callable[[str, IngestConfig], Reading]:
    """The reader function of format ``fmt``."""
    from interestrec.data import movielens

    readers: dict[str, Callable] = {
        "ml-latest": movielens.read_ml_latest,
        "ml-1m": movielens.read_ml_1m,
        "ml-100k": movielens.read_ml_100k,
    }
    try:
        from interestrec.data import generic

        readers.update(
            {
                "parquet": generic.read_parquet_log,
                "csv": generic.read_csv_log,
                "jsonl": generic.read_jsonl_log,
                "synthetic": generic.read_synthetic,
            }
        )
    except ImportError:  # pragma: no cover - generic readers are optional at import time
        pass
    if fmt not in readers:
        raise StageError(f"unknown ingest.format '{fmt}'; formats: {', '.join(sorted(readers))}, auto")
    return readers[fmt]
