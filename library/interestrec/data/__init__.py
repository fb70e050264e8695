"""Data model, readers, validation, splits, windows and the synthetic generator.

Public API:
    load_ingest(stage_dir) -> IngestArtifacts   # what later stages read
    ingest(data_path, cfg, out_dir) -> summary   # the stage itself
    leave_last_out, cutoff_split, window_edges, assign_windows
"""

from __future__ import annotations

from dataclasses import dataclass

from interestrec import layout
from interestrec.data.config import ColumnMapping, IngestConfig
from interestrec.data.schema import EVENT_KINDS, INTERACTION_KINDS, event_schema, item_schema
from interestrec.data.split import cutoff_split, leave_last_out
from interestrec.data.windows import assign_windows, window_edges


@dataclass(frozen=True)
class IngestArtifacts:
    """The ingest stage's outputs as Arrow tables (see docs/artifacts.md)."""

    events: object
    items: object
    windows: object


def load_ingest(stage_dir: str) -> IngestArtifacts:
    """Read ``events``, ``items`` and ``windows`` parquet from an ingest output directory."""
    from interestrec import artifacts

    return IngestArtifacts(
        events=artifacts.read_parquet(artifacts.join(stage_dir, layout.INGEST_EVENTS)),
        items=artifacts.read_parquet(artifacts.join(stage_dir, layout.INGEST_ITEMS)),
        windows=artifacts.read_parquet(artifacts.join(stage_dir, layout.INGEST_WINDOWS)),
    )


__all__ = [
    "EVENT_KINDS", "INTERACTION_KINDS", "ColumnMapping", "IngestArtifacts", "IngestConfig", "assign_windows",
    "cutoff_split", "event_schema", "item_schema", "leave_last_out", "load_ingest", "window_edges",
]
