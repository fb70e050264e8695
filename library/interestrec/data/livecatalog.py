"""The live catalogue a serving deployment exported, read back by the next pipeline run.

Items added while serving (``POST /items``) are written by :func:`interestrec.serving.store.export_dataset`
as ``live_items.parquet`` beside the stored events (``events.parquet``). In a generic dataset directory
(Parquet, CSV or JSON-lines events) a top-level ``live_items.<ext>`` is a catalogue *supplement*, read
like an ``items.<ext>`` catalog (``item_id``, ``title``, ``genres``, ``year``, ``tags``, ``description``;
other columns such as the export's ``vector`` and ``seq`` are not input):

- with a catalog (``items.<ext>`` or ``ingest.items_path``) it adds the items the catalog lacks (for an
  id both list, the catalog's row wins, as serving prefers the published catalogue's item), and events
  must name an item of either;
- without one, events on any item are accepted as for a log without a catalog (those items titled by
  their id), and every live item is an item of the run with its title, genres and description, whether
  or not an event names it yet.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from interestrec.data.errors import DataError

if TYPE_CHECKING:
    from interestrec.data.reading import Reading
    from interestrec.ids import IdMap

LIVE_ITEMS = "live_items"  # the stem of the supplement file at the top of a generic dataset directory
COLUMNS = ("item_id", "title", "year", "genres", "tags", "description")


def is_catalog_file(name: str, stem: str) -> bool:
    """Whether ``name`` (relative to the dataset directory) is a top-level ``<stem>.<ext>[.gz]`` file."""
    return "/" not in name and name.lower().removesuffix(".gz").rsplit(".", 1)[0] == stem


def normalised(items):
    """A reader's catalog table with every column of :data:`COLUMNS` (a missing ``description`` as nulls,
    missing genres and tags as empty lists)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if "description" not in items.column_names:
        items = items.append_column("description", pa.nulls(items.num_rows, pa.string()))
    for c in ("genres", "tags"):
        col = items[c]
        items = items.set_column(items.column_names.index(c), c, pc.fill_null(col, pa.scalar([], col.type)))
    return items.select(list(COLUMNS))


def merged(catalog, live):
    """The catalog's rows, then the live rows whose ``item_id`` (original id text) the catalog lacks."""
    import pyarrow as pa
    import pyarrow.compute as pc

    catalog, live = normalised(catalog), normalised(live)
    new = pc.invert(pc.is_in(live["item_id"], value_set=catalog["item_id"]))
    return pa.concat_tables([catalog, live.filter(new)])


def live_keys(reading: Reading) -> np.ndarray | None:
    """The supplement's original item ids (``None`` without one). Shapes: returns ``(m,)`` object."""
    items = reading.live_items
    if items is None:
        return None
    return np.asarray(items.column("item_id").to_pylist(), dtype=object)


def live_values(keys: np.ndarray, kind: str) -> np.ndarray:
    """The supplement's ids as an id column of ``kind`` holds them: int64 for ``int``, the text otherwise.

    Shapes:
        keys: ``(m,)`` object; returns ``(m,)``.
    """
    if kind != "int":
        return np.asarray([str(k) for k in keys], dtype=object)
    from interestrec.data.validate import parse_int64

    val, is_int, fits = parse_int64(np.asarray(keys, dtype=object))
    if not (is_int & fits).all():
        bad = list(keys[~(is_int & fits)][:3])
        raise DataError(f"live catalogue item ids {bad} are not integers within int64; set ingest.id_type=string")
    return val.astype(np.int64)


def live_index(keys: np.ndarray | None, item_map: IdMap, kind: str) -> np.ndarray | None:
    """Each supplement row's item index under ``item_map`` (``-1`` where the map lacks it; ``None`` without
    a supplement). Shapes: returns ``(m,)`` int64."""
    if keys is None:
        return None
    from interestrec.data.resolve import int_index

    values = live_values(keys, kind)
    return int_index(item_map, values) if kind == "int" else item_map.to_index(values, missing=-1)


def with_live_rows(table, live, index: np.ndarray):
    """``items.parquet`` rows (``item_id`` the item index) with the supplement's title, year, genres, tags and
    description where a row is a live item (``index``: each supplement row's item index, ``-1`` for none).

    Shapes:
        index: ``(m,)`` int64, aligned with ``live``'s rows.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    from interestrec.ids import lookup

    keep = np.flatnonzero(np.asarray(index) >= 0)
    if not len(keep):
        return table
    live = normalised(live)
    order = keep[np.argsort(index[keep], kind="stable")]
    pos = lookup(index[order], table["item_id"].to_numpy())
    has = pa.array(pos >= 0)
    rows = pa.array(order[np.maximum(pos, 0)], pa.int64())
    cols = {c: table[c] for c in table.column_names}
    for c in COLUMNS[1:]:
        if c in cols:
            cols[c] = pc.if_else(has, live[c].take(rows).cast(table.schema.field(c).type), cols[c])
    return pa.table(cols, schema=table.schema)
