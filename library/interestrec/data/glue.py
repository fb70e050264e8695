"""What the two ingests share around their engines: the record-count check, the per-file accounting, the items
and their tags, the id maps and windows tables, and the summary.

The distributed ingest (:mod:`interestrec.data.stage`) adds its numbers up from per-block and per-partition
statistics, the driver-side reference (:mod:`interestrec.data.reference`) from every event at once; both hand
them to these functions, so the outputs around the engines are built by one piece of code.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from interestrec import artifacts, layout
from interestrec.data.config import IngestConfig
from interestrec.data.errors import DataError
from interestrec.data.schema import SPLITS, item_schema
from interestrec.ids import IdMap

if TYPE_CHECKING:
    from interestrec.data.reading import Reading


def tally(stats: Iterable[Mapping], key: str) -> Counter:
    """The sum of the ``key`` counters of several statistics dicts (per block or per partition)."""
    total: Counter = Counter()
    for s in stats:
        total.update(s[key])
    return total


def expected_counts(reading: Reading) -> dict[str, int | None]:
    """Per event file, the record count of the independent counting pass (waits for its tasks)."""
    import ray

    return {name: int(ray.get(v)) if isinstance(v, ray.ObjectRef) else v for name, v in reading.expected.items()}


def check_counts(files: list[str], expected: Mapping[str, int | None], seen: Mapping[str, int],
                 error: type[Exception] = DataError) -> dict[str, int]:
    """Per event file, the records the parser saw (``seen``, accepted + rejected); raises ``error`` when the
    independent count (``expected``, ``None`` where a format has none) disagrees."""
    counts = {}
    for name in files:
        want, got = expected.get(name), int(seen.get(name, 0))
        if want is not None and want != got:
            raise error(f"{name}: the independent count found {want} records but {got} were read "
                        "(accepted + rejected); the file's quoting or encoding is inconsistent")
        counts[name] = got
    return counts


@dataclass(frozen=True)
class Accounts:
    """Where every record read went.

    Attributes:
        per_file: per event file, then per catalog file, ``{"rows_read", "accepted", "rejected"}``.
        by_reason: rejected records (events and catalog rows) per reason.
    """

    per_file: dict[str, dict[str, int]]
    by_reason: Counter


def account_files(read: Mapping[str, int], accepted: Mapping[str, int], reasons: Counter, reading: Reading,
                  rejects_dir: str) -> Accounts:
    """The per-file accounting of events (``read`` and ``accepted`` per event file, event rejects per reason
    in ``reasons``) and of the catalog files, whose rejects this writes to ``rejects_dir/<source>.parquet``."""
    by_reason = Counter(reasons)
    per_file: dict[str, dict[str, int]] = {}
    for source, n_read in read.items():
        n_ok = accepted.get(source, 0)
        per_file[source] = {"rows_read": n_read, "accepted": n_ok, "rejected": n_read - n_ok}
    for source, (n_read, item_rejects) in reading.item_rows.items():
        per_file[source] = {"rows_read": n_read, "accepted": n_read - item_rejects.num_rows, "rejected": item_rejects.num_rows}
        by_reason.update(item_rejects.column("reason").to_pylist())
        if item_rejects.num_rows:
            artifacts.write_parquet(artifacts.join(rejects_dir, f"{source}.parquet"), item_rejects)
    return Accounts(per_file, by_reason)


def check_accepted(n_accepted: int, accounts: Accounts, data_path: str, out_dir: str,
                   error: type[Exception] = DataError) -> None:
    """Raises ``error`` when no event was accepted, naming the reasons."""
    if n_accepted == 0:
        raise error(f"no valid events in {data_path}: every row was rejected ({dict(accounts.by_reason)}); "
                    f"see {out_dir}/rejects/")


def catalog_keys(reading: Reading) -> np.ndarray | None:
    """The catalog's original item ids (``None`` without a catalog).

    Shapes:
        returns ``(n_catalog,)`` object.
    """
    if reading.items is None:
        return None
    return np.asarray(reading.items.column("item_id").to_pylist(), dtype=object)


def count_tags(item: np.ndarray, text: np.ndarray) -> Counter:
    """``{(item, tag): count}`` over tag events: the text stripped and lower-cased, blank texts skipped.

    Shapes:
        item: ``(n,)`` int; text: ``(n,)`` object (str or None).
    """
    tags: Counter = Counter()
    for i, t in zip(item, text):
        if isinstance(t, str) and t.strip():
            tags[(int(i), t.strip().lower())] += 1
    return tags


def tag_lists(index: np.ndarray, tags: Counter) -> list[list[str]]:
    """Per catalog row (its item ``index``), its tags: most frequent first, then alphabetical.

    Shapes:
        index: ``(n_catalog,)`` int; returns ``n_catalog`` lists.
    """
    per_item: dict[int, list] = {}
    for (i, t), c in tags.items():
        per_item.setdefault(i, []).append((-c, t))
    return [[t for _, t in sorted(per_item.get(int(i), []))] for i in index]


def items_table(reading: Reading, cat_index: np.ndarray | None, tags: Counter, log_ids: np.ndarray, item_map: IdMap,
                live_index: np.ndarray | None = None):
    """``items.parquet``: the catalog (its ``tags`` from tag events when the format says so, ``cat_index`` its
    rows' item indices), or for a log without a catalog the items of ``log_ids``, titled by their original id
    unless the live catalogue supplement (``reading.live_items``, ``live_index`` its rows' item indices) has
    the item (:mod:`interestrec.data.livecatalog`).

    Shapes:
        cat_index: ``(n_catalog,)`` int64; log_ids: ``(n_items,)`` int64 item indices (used without a catalog);
        live_index: ``(n_live,)`` int64.
    """
    import pyarrow as pa

    from interestrec.data.livecatalog import with_live_rows

    strings = pa.list_(pa.string())
    items = reading.items
    if items is None:
        n = len(log_ids)
        table = pa.table([log_ids, pa.array([str(x) for x in item_map.to_original(log_ids)], pa.string()),
                          pa.nulls(n, pa.int32()), pa.array([[]] * n, strings), pa.array([[]] * n, strings),
                          pa.nulls(n, pa.string())], schema=item_schema(description=True))
        live = reading.live_items
        return table if live is None or live_index is None else with_live_rows(table, live, live_index)
    col = pa.array(tag_lists(cat_index, tags), strings) if reading.tags_from_events else items.column("tags")
    desc = items.column("description") if "description" in items.column_names else pa.nulls(items.num_rows, pa.string())
    return pa.table([pa.array(cat_index, pa.int64()), items.column("title"), items.column("year"),
                     items.column("genres"), col, desc], schema=item_schema(description=True))


def write_id_maps(out_dir: str, user_map: IdMap, item_map: IdMap) -> None:
    """``ids/users.parquet`` and ``ids/items.parquet``."""
    user_map.to_parquet(artifacts.join(out_dir, layout.INGEST_USER_IDS))
    item_map.to_parquet(artifacts.join(out_dir, layout.INGEST_ITEM_IDS))


def write_windows(out_dir: str, edges: np.ndarray, per_window: np.ndarray) -> None:
    """``windows.parquet``: each window's ``[start, end)`` and its events.

    Shapes:
        edges: ``(w + 1,)`` int64; per_window: ``(w,)`` int.
    """
    import pyarrow as pa

    n_win = len(edges) - 1
    artifacts.write_parquet(artifacts.join(out_dir, layout.INGEST_WINDOWS), pa.table({
        "window": pa.array(np.arange(n_win), pa.int32()), "start": edges[:-1], "end": edges[1:],
        "events": per_window.astype(np.int64)}))


@dataclass(frozen=True)
class Tallies:
    """The accepted events' counts the summary reports, however an engine adds them up.

    Attributes:
        users / items_with_events: distinct users and items among the accepted events.
        texts_cut: accepted events whose text was cut to ``max_text_chars``.
        events_by_kind: events per kind.
        split / other_split: interactions / other events per split.
        users_by_split: per split (``train``, ``valid``, ``test``), the users with an interaction in it.
        too_short: users too short for leave-last-out (0 with a cutoff).
        time_range: the first and the last timestamp.
    """

    users: int
    items_with_events: int
    texts_cut: int
    events_by_kind: Mapping[str, int]
    split: Mapping[str, int]
    other_split: Mapping[str, int]
    users_by_split: Mapping[str, int]
    too_short: int
    time_range: tuple[int, int]


def summary(fmt: str, data_path: str, cfg: IngestConfig, reading: Reading, accounts: Accounts, tallies: Tallies,
            n_items: int, edges: np.ndarray, per_window: np.ndarray, maps: tuple[IdMap, IdMap], unit: str,
            extra: Mapping | None = None) -> dict:
    """The ingest summary (see docs/artifacts.md); ``extra`` keys (an engine's own) go before the driver's peak
    memory, which is measured here.

    Shapes:
        edges: ``(w + 1,)``; per_window: ``(w,)``.
    """
    import resource

    user_map, item_map = maps
    per_file = accounts.per_file
    rows_read = sum(f["rows_read"] for f in per_file.values())
    accepted = sum(f["accepted"] for f in per_file.values())
    split = tallies.split
    return {
        "format": fmt,
        "data": str(data_path),
        "rows_read": rows_read,
        "accepted": accepted,
        "rejected": rows_read - accepted,
        "rejected_by_reason": dict(sorted(accounts.by_reason.items())),
        "texts_cut": int(tallies.texts_cut),
        "per_file": per_file,
        "users": int(tallies.users),
        "items": int(n_items),
        "items_with_events": int(tallies.items_with_events),
        "events_by_kind": dict(sorted(tallies.events_by_kind.items())),
        "split": {
            "mode": "cutoff" if cfg.cutoff is not None else "leave_last_out",
            "train": int(split.get("train", 0)),
            "valid": int(split.get("valid", 0)),
            "test": int(split.get("test", 0)),
            "users_too_short": int(tallies.too_short),
            "users": {k: int(tallies.users_by_split[k]) for k in SPLITS},
            "other_events": dict(sorted(tallies.other_split.items())),
        },
        "windows": {
            "count": len(edges) - 1,
            "mode": cfg.window_mode,
            "bounds": [[int(a), int(b)] for a, b in zip(edges[:-1], edges[1:])],
            "events_per_window": per_window.tolist(),
        },
        "time_range": [int(tallies.time_range[0]), int(tallies.time_range[1])],
        "ids": {"users": user_map.kind, "items": item_map.kind, "users_mapped": len(user_map), "items_mapped": len(item_map)},
        "timestamp_unit": unit,
        "ignored_files": reading.ignored,
        **(extra or {}),
        "driver_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
