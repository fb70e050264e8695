"""Data model, readers, validation, splits, windows and the synthetic generator.

Public API:
    load_ingest(stage_dir) -> IngestArtifacts   # what later stages read
    ingest(data_path, cfg, out_dir) -> summary   # the stage itself
    leave_last_out, cutoff_split, window_edges, assign_windows, user_histories
"""

from __future__ import annotations

from dataclasses import dataclass

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
        events=artifacts.read_parquet(artifacts.join(stage_dir, "events.parquet")),
        items=artifacts.read_parquet(artifacts.join(stage_dir, "items.parquet")),
        windows=artifacts.read_parquet(artifacts.join(stage_dir, "windows.parquet")),
    )


def user_histories(events_ds):
    """Per-user, time-sorted histories from an event ``ray.data.Dataset`` via a groupby on ``user_id``.

    Returns a dataset with one row per user: ``user_id``, ``item_ids``, ``timestamps``, ``events``
    (lists, oldest first).
    """
    import numpy as np

    def collect(group):
        order = np.lexsort((group["item_id"], group["timestamp"]))
        return {
            "user_id": group["user_id"][:1],
            "item_ids": np.array([group["item_id"][order]], dtype=object),
            "timestamps": np.array([group["timestamp"][order]], dtype=object),
            "events": np.array([group["event"][order]], dtype=object),
        }

    return events_ds.groupby("user_id").map_groups(collect, batch_format="numpy")


__all__ = [
    "EVENT_KINDS", "INTERACTION_KINDS", "ColumnMapping", "IngestArtifacts", "IngestConfig", "assign_windows",
    "cutoff_split", "event_schema", "item_schema", "leave_last_out", "load_ingest", "user_histories", "window_edges",
]
