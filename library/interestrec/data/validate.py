"""Row validation: every raw event row is accepted or rejected with exactly one reason.

Per-row checks are pure functions over pandas batches, called from a Ray Data ``map_batches`` so they
shard across the cluster. The reasons, their order (first that applies wins) and their thresholds are the
table of :mod:`interestrec.data.rules`: the reader's own reasons first, then :data:`~interestrec.data.rules.ROW_RULES`
(applied here and, in Arrow, by :mod:`interestrec.data.validate_arrow`); checks that need the whole dataset
run afterwards in :mod:`interestrec.data.resolve` and the de-duplication. Text longer than ``max_text_chars``
is cut, never a reject.

Ids stay text here (never through float64); timestamps are parsed exactly: integer literals as int64,
decimals as float64, ISO 8601 strings to UTC seconds.
"""

from __future__ import annotations

import re

import numpy as np

from interestrec.data.config import IngestConfig
from interestrec.data.rules import RowFacts, apply_rules
from interestrec.data.schema import EVENT_KINDS

_INT = re.compile(r"[+-]?\d+")
SPACE = " \t\n\r\f\v"  # the whitespace a text is cut at (ASCII, the same in Python and Arrow's RE2)
_LAST_WORD = re.compile(f"[^{SPACE}]*\\Z")
_ISO = re.compile(r"\d{4}-\d{2}-\d{2}([T ].*)?")


def cut_text(text: str, cap: int) -> str:
    """``text`` within ``cap`` characters: unchanged when it fits, else cut at the last whitespace before the cap
    when that keeps at least half of it (else at the cap itself), trailing whitespace removed."""
    if len(text) <= cap:
        return text
    words = _LAST_WORD.sub("", text[: cap + 1], count=1).rstrip(SPACE)
    return words if len(words) >= cap // 2 else text[:cap].rstrip(SPACE)


def _arrow_text(values):
    import pyarrow as pa

    return pa.array(np.asarray(values, dtype=object), type=pa.string(), from_pandas=True)


def _text(s) -> np.ndarray:
    """Stripped text (``None`` for null/blank) as an object array (vectorised in Arrow)."""
    import pyarrow.compute as pc

    arr = pc.utf8_trim_whitespace(_arrow_text(s.to_numpy(dtype=object) if hasattr(s, "to_numpy") else s))
    arr = pc.if_else(pc.equal(arr, ""), None, arr)
    return arr.to_numpy(zero_copy_only=False).astype(object)


def parse_int64(values) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exact int64 parse of text: ``(value, is_integer_literal, fits_int64)``.

    Literals of up to 18 digits are cast in Arrow (exact); longer ones are checked one by one.

    Shapes:
        values: ``(n,)`` object (str or None) or a ``pyarrow`` string array; returns three ``(n,)`` arrays
        (int64, bool, bool).
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    n = len(values)
    val = np.zeros(n, np.int64)
    if n == 0:
        return val, np.zeros(0, bool), np.zeros(0, bool)
    arr = values if isinstance(values, pa.Array) else _arrow_text(values)
    is_int = pc.fill_null(pc.match_substring_regex(arr, r"^[+-]?[0-9]+$"), False).to_numpy(zero_copy_only=False)
    length = pc.fill_null(pc.utf8_length(arr), 0).to_numpy(zero_copy_only=False)
    short = is_int & (length <= 18)
    fits = short.copy()
    if short.any():
        digits = pc.replace_substring_regex(arr.filter(pa.array(short)), r"^\+", "")  # Arrow's cast refuses "+12"
        val[short] = pc.cast(digits, pa.int64()).to_numpy(zero_copy_only=False)
    for i in np.flatnonzero(is_int & ~short):
        k = int(arr[int(i)].as_py())
        if -(2**63) <= k < 2**63:
            fits[i], val[i] = True, k
    return val, is_int, fits


def parse_timestamps(ts) -> dict[str, np.ndarray]:
    """Timestamps as text → exact numbers: ``int`` (int64, with ``is_int``), ``float`` (float64, NaN when not a
    decimal), ``iso`` (UTC seconds, with ``is_iso``).

    Shapes:
        ts: ``(n,)`` object (str or None) or a ``pyarrow`` string array; every returned array ``(n,)``.
    """
    import pandas as pd
    import pyarrow as pa

    arr = ts if isinstance(ts, pa.Array) else _arrow_text(ts)

    def subset(mask: np.ndarray) -> np.ndarray:
        return arr.filter(pa.array(mask)).to_numpy(zero_copy_only=False).astype(object)

    ival, is_int, fits = parse_int64(arr)
    is_int &= fits
    fval = np.where(is_int, ival, np.nan).astype(np.float64)
    valid = arr.is_valid().to_numpy(zero_copy_only=False)
    rest = ~is_int & valid
    if rest.any():  # only non-integer text needs the decimal parse
        parsed = pd.to_numeric(pd.Series(subset(rest), dtype=object), errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
        fval[rest] = np.where(np.isfinite(parsed), parsed, np.nan)
    iso_like = np.isnan(fval) & valid
    if iso_like.any():
        iso_like[iso_like] = [bool(_ISO.fullmatch(v)) for v in subset(iso_like)]
    iso = np.zeros(len(arr), np.int64)
    is_iso = np.zeros(len(arr), bool)
    if iso_like.any():
        parsed = pd.to_datetime(pd.Series(subset(iso_like), dtype=object), format="ISO8601", utc=True, errors="coerce")
        secs = ((parsed - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)).to_numpy(dtype="float64", na_value=np.nan)
        ok = np.isfinite(secs)
        idx = np.flatnonzero(iso_like)[ok]
        iso[idx] = secs[ok].astype(np.int64)
        is_iso[idx] = True
    return {"int": ival, "is_int": is_int, "float": fval, "iso": iso, "is_iso": is_iso}


def validate_events(batch, cfg: IngestConfig):
    """Parse and check a raw event batch (pandas DataFrame in the raw event schema).

    Returns ``source, record, line, user_key, item_key`` (id text), ``ts_int, ts_is_int, ts_float, ts_iso,
    ts_is_iso`` (see :func:`parse_timestamps`), ``event``/``text`` (str; the text cut to ``max_text_chars``),
    ``cut`` (bool: the text was cut), ``value`` (float32), ``reason`` (``None`` while accepted) and ``raw``.
    """
    import pandas as pd
    import pyarrow.compute as pc

    reason = batch["reason"].astype(object).where(batch["reason"].notna(), None).to_numpy(dtype=object).copy()
    user, item, ts_text = _text(batch["user_id"]), _text(batch["item_id"]), _text(batch["timestamp"])
    ev_text, val_text = _text(batch["event"]), _text(batch["value"])
    event = pc.utf8_lower(_arrow_text(ev_text)).to_numpy(zero_copy_only=False).astype(object)
    text = _arrow_text(batch["text"].to_numpy(dtype=object)).to_numpy(zero_copy_only=False).astype(object)
    value = pd.to_numeric(pd.Series(val_text, dtype=object), errors="coerce").to_numpy(dtype="float64", na_value=np.nan).copy()

    def chars(ids: np.ndarray) -> np.ndarray:
        return pc.fill_null(pc.utf8_length(_arrow_text(ids)), 0).to_numpy(zero_copy_only=False)

    t = parse_timestamps(ts_text)
    facts = RowFacts(blank_user=pd.isna(user), blank_item=pd.isna(item), blank_ts=pd.isna(ts_text),
                     blank_event=pd.isna(ev_text), blank_value=pd.isna(val_text), blank_text=pd.isna(_text(text)),
                     user_chars=chars(user), item_chars=chars(item), is_rate=event == "rate", is_tag=event == "tag",
                     known_event=np.isin(event.astype(str), EVENT_KINDS), value=value, ts=t)
    apply_rules(reason, pd.isna(reason), facts, cfg)

    raw = batch["raw"].astype(object).to_numpy(dtype=object).copy()
    no_raw = np.flatnonzero(pd.isna(raw) & ~pd.isna(reason))
    for i in no_raw:  # columnar sources carry no raw text: rebuild it for the rejects only
        raw[i] = ",".join("" if v is None else str(v) for v in (user[i], item[i], ts_text[i], ev_text[i], val_text[i], text[i]))
    cut = np.array([isinstance(x, str) and len(x) > cfg.max_text_chars for x in text], dtype=bool)
    for i in np.flatnonzero(cut):
        text[i] = cut_text(text[i], cfg.max_text_chars)
    return pd.DataFrame({
        "source": batch["source"].astype(str).to_numpy(),
        "record": batch["record"].astype("int64").to_numpy(),
        "line": batch["line"].astype("int64").to_numpy(),
        "user_key": user, "item_key": item,
        "ts_int": t["int"], "ts_is_int": t["is_int"], "ts_float": t["float"], "ts_iso": t["iso"], "ts_is_iso": t["is_iso"],
        "event": np.where(pd.isna(event), "", event).astype(object),
        "value": value.astype(np.float32),
        "text": text,
        "cut": cut,
        "reason": reason,
        "raw": raw,
    })


def mark_duplicates(user, item, ts, event, value, text) -> np.ndarray:
    """Boolean mask of rows that exactly repeat an earlier row (the first occurrence is kept).

    Shapes:
        all inputs: ``(n,)`` in file order; returns ``(n,)`` bool.
    """
    import pandas as pd

    frame = pd.DataFrame({"u": user, "i": item, "t": ts, "e": event, "v": value, "x": text})
    return frame.duplicated(keep="first").to_numpy()
