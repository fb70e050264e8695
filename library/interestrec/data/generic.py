"""Readers for generic event logs (Parquet, CSV, JSON lines) and the synthetic generator's shards.

Columns are mapped onto the event schema with ``IngestConfig.columns`` (a :class:`ColumnMapping`);
every value is carried as text into validation, so a bad value becomes a counted reject, not a crash.
Columnar sources have no line numbers: ``line`` is the row's position within its Ray Data batch
sequence for that file (stable for a given file and read).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from interestrec.data.config import IngestConfig
from interestrec.data.readers import Reading
from interestrec.stages import StageError


def _files(path: str, suffixes: tuple[str, ...]) -> list[Path]:
    p = Path(path)
    if p.is_file():
        return [p]
    files = sorted(q for q in p.iterdir() if q.suffix.lower() in suffixes and not q.name.startswith(("items", "truth")))
    if not files:
        raise StageError(f"no {'/'.join(suffixes)} event files in {p}")
    return files


def _to_raw(cfg: IngestConfig, source: str):
    m = cfg.columns

    def convert(batch):
        import pandas as pd

        missing = [c for c in (m.user_id, m.item_id, m.timestamp) if c not in batch.columns]
        if missing:
            raise StageError(f"{source}: missing columns {missing}; have {list(batch.columns)} "
                             f"(set ingest.columns to map them)")

        def col(name, default=None):
            if name and name in batch.columns:
                return batch[name].astype(object).where(batch[name].notna(), None).map(lambda v: None if v is None else str(v))
            return pd.Series([default] * len(batch), dtype=object)

        return pd.DataFrame({
            "source": source, "line": np.arange(len(batch), dtype=np.int64),
            "user_id": col(m.user_id), "item_id": col(m.item_id), "timestamp": col(m.timestamp),
            "event": col(m.event, m.default_event).fillna(m.default_event), "value": col(m.value), "text": col(m.text),
            "reason": None,
            "raw": [",".join("" if pd.isna(v) else str(v) for v in row) for row in batch.itertuples(index=False)],
        })

    return convert


def _read(path: str, cfg: IngestConfig, suffixes: tuple[str, ...], read_fn) -> Reading:
    import pyarrow.parquet as pq

    events = {f.name: read_fn(str(f)).map_batches(_to_raw(cfg, f.name), batch_format="pandas") for f in _files(path, suffixes)}
    items = None
    items_path = cfg.items_path or (str(Path(path) / "items.parquet") if Path(path).is_dir() and (Path(path) / "items.parquet").exists() else None)
    if items_path:
        items = pq.read_table(items_path)
    return Reading(events=events, items=items)


def read_parquet_log(path: str, cfg: IngestConfig) -> Reading:
    """Parquet event logs (a file or a directory of ``*.parquet``)."""
    import ray

    return _read(path, cfg, (".parquet", ".pq"), ray.data.read_parquet)


def read_csv_log(path: str, cfg: IngestConfig) -> Reading:
    """CSV event logs with a header row."""
    import pyarrow.csv as pacsv
    import ray

    return _read(path, cfg, (".csv",), lambda f: ray.data.read_csv(f, convert_options=pacsv.ConvertOptions(strings_can_be_null=True)))


def read_jsonl_log(path: str, cfg: IngestConfig) -> Reading:
    """JSON-lines event logs (one object per line)."""
    import ray

    return _read(path, cfg, (".jsonl", ".json", ".ndjson"), ray.data.read_json)


def read_synthetic(path: str, cfg: IngestConfig) -> Reading:
    """A directory written by :func:`interestrec.data.synthetic.write_shards`."""
    return read_parquet_log(path, cfg)
