"""The steps of the distributed ingest, as pure functions over pandas frames (one block or one partition).

The ingest runs as a hash shuffle by user (:mod:`interestrec.data.shuffle` puts these on the cluster):

1. :func:`partition_of` (during validation) and :func:`scatter` — per validated block: the partition of every
   row (a stable hash of its user id), and the block's statistics (:func:`block_stats`: records per file,
   whether the ids are integers, timestamp-unit votes).
2. :func:`process_partition` — per partition, which holds every row of its users: timestamps to UTC seconds,
   ids parsed (and looked up in the catalog), de-duplication in file order, the per-user split; returns the
   accepted events (still with original ids), the rejects and the partition's statistics.
3. :func:`finish_partition` — per partition, once the driver has the id maps and the window edges: indices,
   windows, the final ``events`` table.

Every row of a user lands in one partition, so de-duplication and the leave-last-out split see whole
histories; the driver only ever holds per-block and per-partition statistics.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from interestrec.data.config import IngestConfig
from interestrec.data.glue import Tallies, count_tags, tally
from interestrec.data.resolve import (
    lookup_known,
    numeric_timestamps,
    parse_keys,
    resolve_timestamps,
    unit_votes,
)
from interestrec.data.schema import INTERACTION_KINDS, SPLITS, event_schema
from interestrec.data.split import cutoff_split, leave_last_out
from interestrec.data.validate import mark_duplicates, parse_int64
from interestrec.data.windows import assign_windows
from interestrec.ids import IdMap

REJECT_COLUMNS = ["source", "record", "line", "raw", "reason"]
ACCEPTED_COLUMNS = ["user", "item", "timestamp", "event", "value", "text", "split"]


@dataclass(frozen=True)
class Resolution:
    """What the driver decides from the block statistics and hands every partition.

    Attributes:
        unit: the timestamp unit (``s``/``ms``/``us``/``ns``/``iso``).
        user_kind / item_kind: ``int`` or ``string``.
        catalog: the item catalog's map (events' items must be in it), or ``None`` for logs without a catalog.
        tags_from_events: count ``tag`` events per (item, tag) for the catalog's tags.
    """

    unit: str
    user_kind: str
    item_kind: str
    catalog: IdMap | None = None
    tags_from_events: bool = False


def partition_of(keys, n_parts: int) -> np.ndarray:
    """Partition of each user id text: a stable hash of its integer value when it is an integer literal
    (so ``"012"`` and ``"12"`` meet), else of the text; null ids go to partition 0.

    Shapes:
        keys: ``(n,)`` object (str or None) or a ``pyarrow`` string array; returns ``(n,)`` int32 in
        ``[0, n_parts)``.
    """
    import pandas as pd
    import pyarrow as pa

    if n_parts <= 1 or not len(keys):
        return np.zeros(len(keys), np.int32)
    val, is_int, fits = parse_int64(keys)
    as_int = is_int & fits
    h = pd.util.hash_array(val)
    if not as_int.all():  # only text that is not an integer literal is hashed as text
        other = ~as_int
        text = (keys.filter(pa.array(other)).to_numpy(zero_copy_only=False) if isinstance(keys, pa.Array)
                else keys[other]).astype(object)
        h[other] = pd.util.hash_array(np.where(pd.isna(text), "", text).astype(object))
    return (h % np.uint64(n_parts)).astype(np.int32)


def _all_int(keys: np.ndarray) -> bool:
    import pandas as pd

    vals = np.array([v for v in pd.unique(keys) if isinstance(v, str)], dtype=object)
    return bool(parse_int64(vals)[1].all())


def block_stats(frame, cfg: IngestConfig) -> dict:
    """Statistics of one validated block that add up over blocks.

    Returns ``records`` (per source file), ``user_int`` / ``item_int`` (every id text is an integer literal)
    and ``votes`` (:func:`interestrec.data.resolve.unit_votes` of the rows still accepted).
    """
    reason = frame["reason"].to_numpy(dtype=object)
    ts_int, ts_float = numeric_timestamps(frame, reason)
    return {
        "records": {str(k): int(v) for k, v in frame["source"].value_counts().items()},
        "user_int": _all_int(frame["user_key"].to_numpy(dtype=object)),
        "item_int": _all_int(frame["item_key"].to_numpy(dtype=object)),
        "votes": unit_votes(ts_int, ts_float, cfg) if cfg.timestamp_unit == "auto" else {},
    }


def scatter(table, n_parts: int) -> list:
    """Split one validated block (a ``pyarrow.Table`` with a ``part`` column) into ``n_parts`` tables, rows
    kept in order."""
    part = table.column("part").to_numpy()
    order = np.argsort(part, kind="stable")
    bounds = np.searchsorted(part[order], np.arange(n_parts + 1))
    sorted_table = table.take(order)
    return [sorted_table.slice(a, b - a) for a, b in zip(bounds[:-1], bounds[1:])]


def _sort_codes(values: np.ndarray) -> np.ndarray:
    """Integer codes that sort like ``values`` (ints as they are, text by its sorted position)."""
    import pandas as pd

    if np.issubdtype(values.dtype, np.integer):
        return values.astype(np.int64)
    return pd.factorize(pd.Series(values, dtype=object), sort=True)[0].astype(np.int64)


def process_partition(frame, cfg: IngestConfig, res: Resolution) -> tuple[object, object, dict]:
    """Resolve, de-duplicate and split one partition (every row of its users, from every block).

    Returns the accepted rows (:data:`ACCEPTED_COLUMNS`, ``user``/``item`` still original ids — the catalog
    index for items when there is a catalog — sorted by user, time, item), the rejected rows
    (:data:`REJECT_COLUMNS`) and the partition's statistics (see :func:`partition_stats`).
    """
    import pandas as pd
    import pyarrow as pa

    frame = frame.sort_values(["source", "record"], kind="stable", ignore_index=True)
    reason = frame["reason"].to_numpy(dtype=object).copy()
    ts, _ = resolve_timestamps(frame, cfg, reason, unit=res.unit)
    item = parse_keys(frame["item_key"].to_numpy(dtype=object), res.item_kind, reason)
    if res.catalog is not None:
        item = lookup_known(item, res.item_kind, res.catalog, reason)
    user = parse_keys(frame["user_key"].to_numpy(dtype=object), res.user_kind, reason)
    ok = pd.isna(reason)
    idx = np.flatnonzero(ok)
    event, value, text = (frame[c].to_numpy() for c in ("event", "value", "text"))
    dup = mark_duplicates(user[idx], item[idx], ts[idx], event[idx], value[idx], text[idx])
    reason[idx[dup]] = "duplicate"
    ok = pd.isna(reason)

    rejects = frame.loc[~ok, ["source", "record", "line", "raw"]].assign(reason=reason[~ok]).reset_index(drop=True)
    u, i, t, ev = user[ok], item[ok], ts[ok], event[ok].astype(object)
    uc, ic = _sort_codes(u), _sort_codes(i)
    if cfg.cutoff is not None:
        split, too_short = cutoff_split(t, cfg.cutoff), 0
    else:
        split, too_short = leave_last_out(uc, t, ic, ev)
    order = np.lexsort((ic, t, uc))
    cols = {"user": u[order], "item": i[order], "timestamp": t[order], "event": ev[order],
            "value": value[ok].astype(np.float32)[order], "text": text[ok][order], "split": split[order]}
    stats = partition_stats(cols, rejects, frame["source"].to_numpy(dtype=object)[ok], res)
    stats["too_short"] = int(too_short)
    stats["texts_cut"] = int(frame["cut"].to_numpy(dtype=bool)[ok].sum())
    accepted = pa.table({k: pa.array(v, from_pandas=True) if v.dtype == object else v for k, v in cols.items()})
    return accepted, rejects, stats


def _counts(values) -> Counter:
    import pandas as pd

    return Counter({str(k): int(v) for k, v in pd.Series(values, dtype=object).value_counts().items()})


def partition_stats(cols: dict[str, np.ndarray], rejects, accepted_sources: np.ndarray, res: Resolution) -> dict:
    """Statistics of one processed partition: exact for its users, which no other partition has.

    ``cols``: the accepted rows' columns (:data:`ACCEPTED_COLUMNS`). Returns ``users`` / ``items`` (sorted unique
    accepted ids; catalog indices for items with a catalog), ``accepted`` (per source), ``reasons`` (Counter of
    reject reasons), ``split`` (interactions per split), ``users_by_split``, ``events_by_kind``, ``n``,
    ``ts_min`` / ``ts_max`` and ``tags`` (``{(item, tag): count}`` when tags come from events);
    :func:`process_partition` adds ``too_short`` and ``texts_cut`` (accepted events whose text was cut).
    """
    ev, split, user, ts = cols["event"], cols["split"], cols["user"], cols["timestamp"]
    inter = np.isin(ev, INTERACTION_KINDS)
    is_tag = ev == "tag"
    tags = count_tags(cols["item"][is_tag], cols["text"][is_tag]) if res.tags_from_events else Counter()
    return {
        "users": np.unique(user),
        "items": np.unique(cols["item"]),
        "accepted": _counts(accepted_sources),
        "reasons": _counts(rejects["reason"].to_numpy(dtype=object)),
        "split": _counts(split[inter]),
        "other_split": _counts(split[~inter]),
        "users_by_split": {s: int(len(np.unique(user[inter & (split == s)]))) for s in SPLITS},
        "events_by_kind": _counts(ev),
        "n": len(user),
        "ts_min": int(ts.min()) if len(ts) else 0,
        "ts_max": int(ts.max()) if len(ts) else 0,
        "tags": tags,
    }


def partition_tallies(pstats: list[dict], users: int, time_range: tuple[int, int]) -> Tallies:
    """The summary's counts over every partition's :func:`partition_stats` (``users``: the distinct users)."""
    return Tallies(
        users=users,
        items_with_events=int(len(np.unique(np.concatenate([s["items"] for s in pstats])))),
        texts_cut=int(sum(s["texts_cut"] for s in pstats)),
        events_by_kind=tally(pstats, "events_by_kind"),
        split=tally(pstats, "split"),
        other_split=tally(pstats, "other_split"),
        users_by_split={k: int(sum(s["users_by_split"][k] for s in pstats)) for k in SPLITS},
        too_short=int(sum(s["too_short"] for s in pstats)),
        time_range=time_range,
    )


def finish_partition(accepted, user_map: IdMap, item_map: IdMap, res: Resolution, edges: np.ndarray):
    """The partition's final ``events`` table (ingest's ``events.parquet`` schema): indices, windows, sorted by
    user index, time, item index.

    Shapes:
        accepted: a ``pyarrow.Table`` from :func:`process_partition`; edges: ``(w + 1,)`` window edges; returns a
        ``pyarrow.Table`` of ``accepted.num_rows`` rows.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    from interestrec.data.resolve import int_index

    def index(idmap: IdMap, kind: str, column: str) -> np.ndarray:
        values = accepted.column(column).to_numpy(zero_copy_only=False)
        if kind == "int":
            return int_index(idmap, values.astype(np.int64))
        return idmap.to_index(values.astype(object))

    user = index(user_map, res.user_kind, "user")
    if res.catalog is not None:
        item = accepted.column("item").to_numpy(zero_copy_only=False).astype(np.int64)
    else:
        item = index(item_map, res.item_kind, "item")
    ts = accepted.column("timestamp").to_numpy(zero_copy_only=False).astype(np.int64)
    order = np.lexsort((item, ts, user))
    taken = accepted.select(["event", "value", "text", "split"]).take(pa.array(order))

    def text(column: str):
        return pc.cast(taken.column(column), pa.string())

    value = taken.column("value").to_numpy(zero_copy_only=False).astype(np.float32)
    cols = [user[order], item[order], ts[order], text("event"), pa.array(value, pa.float32(), mask=np.isnan(value)),
            text("text"), text("split"), pa.array(assign_windows(ts[order], edges), pa.int32())]
    return pa.table(cols, schema=event_schema(with_split=True))
