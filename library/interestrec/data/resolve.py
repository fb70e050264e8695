"""Dataset-wide resolution after per-row validation: id types and indices, the timestamp unit, unknown items.

Ids: with ``id_type=auto`` a column whose every id is an integer literal is an integer column (integers
beyond int64 are ``id_out_of_range`` rejects); any other id makes the column's ids strings with dense
indices. An integer column of compact non-negative ids (below ``max(2**20, 8 × distinct ids)``) keeps them as indices (an identity
:class:`~interestrec.ids.IdMap`, so MovieLens ids are unchanged); larger or negative integers (64-bit log
ids) get dense indices over their exact decimal text, so no later stage sizes an array by a huge id. Timestamps: ``auto`` picks the one epoch unit
(s/ms/us/ns) under which the numeric values fall in ``[min_timestamp, max_timestamp]`` and stops with a
clear error when values point to different units; ISO 8601 strings are always accepted.
"""

from __future__ import annotations

import numpy as np

from interestrec.data.config import IngestConfig
from interestrec.data.errors import DataError
from interestrec.data.validate import parse_int64
from interestrec.ids import IdMap, lookup

UNITS = {"s": 1, "ms": 10**3, "us": 10**6, "ns": 10**9}
IDENTITY_FLOOR = 2**20  # integer ids below max(IDENTITY_FLOOR, 8 × distinct ids) are their own index


def int_map(values: np.ndarray) -> IdMap:
    """The map of an integer id column: identity when the ids are non-negative and compact (below
    ``max(2**20, 8 × distinct ids)``, so arrays indexed by id stay small), else dense over the exact text."""
    uniq = np.unique(values)
    if not len(uniq) or (uniq[0] >= 0 and uniq[-1] < max(IDENTITY_FLOOR, 8 * len(uniq))):
        return IdMap.identity(uniq)
    return IdMap.dense([str(int(v)) for v in uniq])


def int_index(idmap: IdMap, values: np.ndarray, missing: int = -1) -> np.ndarray:
    """Indices of integer ids under ``idmap`` (identity or dense over decimal text); ``missing`` when unknown."""
    if idmap.kind == "identity":
        return np.where(lookup(idmap.ids, values) >= 0, values, missing).astype(np.int64)
    return idmap.to_index([str(int(v)) for v in values], missing=missing)


def _flag(reason: np.ndarray, mask: np.ndarray, why: str) -> None:
    import pandas as pd

    m = mask & pd.isna(reason)
    reason[m] = why


def decide_id_type(keys: list[np.ndarray], id_type: str) -> str:
    """``int`` or ``string`` for one id column, from all its non-null keys (events and catalog)."""
    if id_type != "auto":
        return "int" if id_type == "int" else "string"
    for k in keys:
        import pandas as pd

        vals = np.array([v for v in pd.unique(k) if isinstance(v, str)], dtype=object)
        _, is_int, _ = parse_int64(vals)
        if not is_int.all():
            return "string"
    return "int"


def parse_keys(keys: np.ndarray, kind: str, reason: np.ndarray) -> np.ndarray:
    """Id values of one column: int64 for ``int`` columns (``unparsable_number`` / ``id_out_of_range`` flagged,
    0 there), the stripped text for ``string`` columns ("" where null).

    Shapes:
        keys: ``(n,)`` object; returns ``(n,)`` int64 or object.
    """
    import pandas as pd

    if kind != "int":
        return np.where(pd.isna(keys), "", keys).astype(object)
    codes, uniq = pd.factorize(pd.Series(keys, dtype=object), use_na_sentinel=True)
    if not len(uniq):  # no id at all (every row already rejected as missing_field)
        return np.zeros(len(keys), np.int64)
    val, is_int, fits = parse_int64(np.asarray(uniq, dtype=object))
    c = np.maximum(codes, 0)
    has = codes >= 0
    _flag(reason, has & ~is_int[c], "unparsable_number")
    _flag(reason, has & is_int[c] & ~fits[c], "id_out_of_range")
    return np.where(has, val[c], 0).astype(np.int64)


def lookup_known(values: np.ndarray, kind: str, known: IdMap, reason: np.ndarray) -> np.ndarray:
    """Catalog indices of parsed item ids (:func:`parse_keys`); ids the catalog lacks are ``unknown_item`` (0 there).

    Shapes:
        values: ``(n,)``; returns ``(n,)`` int64.
    """
    import pandas as pd

    idx = int_index(known, values) if kind == "int" else known.to_index(values, missing=-1)
    found = idx >= 0
    _flag(reason, pd.isna(reason) & ~found, "unknown_item")
    return np.where(found, idx, 0).astype(np.int64)


def map_ids(keys: np.ndarray, kind: str, reason: np.ndarray, known: IdMap | None = None,
            extra: np.ndarray | None = None) -> tuple[np.ndarray, IdMap | None]:
    """Indices of ``keys`` for accepted rows (rejects flagged in ``reason``) and the column's map.

    ``known``: the catalog's map (items) — ids not in it are ``unknown_item``; without it the map is built
    from the accepted rows' ids and ``extra`` (parsed ids the map holds too: a live catalogue's,
    :func:`interestrec.data.livecatalog.live_values`).

    Shapes:
        keys: ``(n,)`` object; extra: ``(m,)``; returns ``(n,)`` int64 (0 where rejected).
    """
    import pandas as pd

    codes, uniq = pd.factorize(pd.Series(keys, dtype=object), use_na_sentinel=True)
    idx = np.zeros(len(keys), np.int64)
    if kind == "int" and len(uniq):
        val, is_int, fits = parse_int64(np.asarray(uniq, dtype=object))
        c = np.maximum(codes, 0)
        has = codes >= 0
        _flag(reason, has & ~is_int[c], "unparsable_number")
        _flag(reason, has & is_int[c] & ~fits[c], "id_out_of_range")
        idx = np.where(has, val[c], 0)
    ok = pd.isna(reason)
    if known is not None:
        if kind == "int":
            idx = int_index(known, idx)
        else:
            idx = known.to_index(np.where(codes >= 0, keys, ""), missing=-1)
        found = idx >= 0
        _flag(reason, ok & ~found, "unknown_item")
        return np.where(found, idx, 0).astype(np.int64), known
    more = [] if extra is None else [np.asarray(extra)]
    if kind == "int":
        idmap = int_map(np.concatenate([idx[ok].astype(np.int64), *more]))
        return (idx if idmap.kind == "identity" else np.where(ok, int_index(idmap, idx), 0)).astype(np.int64), idmap
    idmap = IdMap.dense(np.concatenate([keys[ok], *more]))
    out = np.zeros(len(keys), np.int64)
    out[ok] = idmap.to_index(keys[ok])
    return out, idmap


def catalog_map(item_keys: np.ndarray, kind: str) -> tuple[IdMap, np.ndarray]:
    """The item map of a catalog's (already validated) keys and each catalog row's index."""
    if kind == "int":
        val, is_int, fits = parse_int64(item_keys)
        if not (is_int & fits).all():
            bad = item_keys[~(is_int & fits)][:3]
            raise DataError(f"item catalog ids {list(bad)} are not integers within int64; set ingest.id_type=string")
        idmap = int_map(val)
        return idmap, int_index(idmap, val)
    idmap = IdMap.dense(item_keys)
    return idmap, idmap.to_index(item_keys)


def unit_votes(ts_int: np.ndarray, ts_float: np.ndarray, cfg: IngestConfig) -> dict[str, int]:
    """Per epoch unit, how many numeric timestamps fall in ``[min_timestamp, max_timestamp]`` under it.

    Votes add up across blocks, so the unit can be decided from per-block votes (:func:`unit_from_votes`).

    Shapes:
        ts_int, ts_float: ``(n,)`` of the numeric timestamps of rows still accepted.
    """
    vals = np.r_[ts_int.astype(np.float64), ts_float]
    return {u: int(((vals / s >= cfg.min_timestamp) & (vals / s <= cfg.max_timestamp)).sum()) for u, s in UNITS.items()}


def unit_from_votes(votes: dict[str, int], cfg: IngestConfig) -> str:
    """The epoch unit given the summed :func:`unit_votes` (``cfg.timestamp_unit`` unless ``auto``)."""
    if cfg.timestamp_unit != "auto":
        return cfg.timestamp_unit
    units = [u for u, v in votes.items() if v]
    if len(units) > 1:
        seen = ", ".join(f"{votes[u]:,} look like {u}" for u in units)
        raise DataError(f"cannot tell the timestamp unit: {seen}; set ingest.timestamp_unit (s, ms, us, ns or iso)")
    return units[0] if units else "s"


def decide_unit(ts_int: np.ndarray, ts_float: np.ndarray, cfg: IngestConfig) -> str:
    """The epoch unit of the numeric timestamps (``cfg.timestamp_unit`` unless ``auto``).

    Shapes:
        ts_int, ts_float: ``(n,)`` of the numeric timestamps of rows still accepted.
    """
    if cfg.timestamp_unit != "auto":
        return cfg.timestamp_unit
    return unit_from_votes(unit_votes(ts_int, ts_float, cfg), cfg)


def numeric_timestamps(frame, reason: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The integer and the decimal timestamps of the rows still accepted (the inputs of :func:`unit_votes`)."""
    import pandas as pd

    ok = pd.isna(reason)
    is_int = frame["ts_is_int"].to_numpy(bool)
    fval = frame["ts_float"].to_numpy(np.float64)
    return frame["ts_int"].to_numpy(np.int64)[ok & is_int], fval[ok & ~is_int & np.isfinite(fval)]


def resolve_timestamps(frame, cfg: IngestConfig, reason: np.ndarray, unit: str | None = None) -> tuple[np.ndarray, str]:
    """UTC seconds of every row (0 where rejected) and the unit used; out-of-range rows are flagged.

    ``unit``: the unit decided over the whole dataset (default: decided from ``frame`` alone).
    """
    import pandas as pd

    ok = pd.isna(reason)
    is_int = frame["ts_is_int"].to_numpy(bool)
    is_iso = frame["ts_is_iso"].to_numpy(bool)
    fval = frame["ts_float"].to_numpy(np.float64)
    ival = frame["ts_int"].to_numpy(np.int64)
    numeric_int, numeric_float = ok & is_int, ok & ~is_int & np.isfinite(fval)
    if unit is None:
        unit = decide_unit(ival[numeric_int], fval[numeric_float], cfg)
    secs = np.zeros(len(frame), np.int64)
    if unit == "iso":
        _flag(reason, ok & ~is_iso, "unparsable_number")
    else:
        scale = UNITS[unit]
        secs[numeric_int] = np.floor_divide(ival[numeric_int], scale)
        secs[numeric_float] = np.floor(np.clip(fval[numeric_float] / scale, -1e15, 1e15)).astype(np.int64)
    secs[ok & is_iso] = frame["ts_iso"].to_numpy(np.int64)[ok & is_iso]
    _flag(reason, ok & ~((secs >= cfg.min_timestamp) & (secs <= cfg.max_timestamp)), "timestamp_out_of_range")
    return secs, unit
