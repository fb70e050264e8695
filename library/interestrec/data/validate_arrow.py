"""Row validation on Arrow batches: the fast path of :func:`interestrec.data.validate.validate_events`.

The same checks (the one rule table of :mod:`interestrec.data.rules`), reasons and outputs, computed on ``pyarrow`` arrays from the block Ray Data hands over to
the table it hands back: no Python string per cell (the ids, event kinds and texts stay Arrow strings), no
pandas frame in between. Used by the distributed ingest (:func:`interestrec.data.shuffle.validate_block`);
the pandas version stays the reference (``data/reference.py``) and the two are tested equal on messy logs
(``tests/test_data_distributed.py``, ``tests/test_data_validate.py``).
"""

from __future__ import annotations

import numpy as np

from interestrec.data.config import IngestConfig
from interestrec.data.rules import RowFacts, apply_rules
from interestrec.data.schema import EVENT_KINDS


def _string(table, name: str):
    """Column ``name`` as one ``pyarrow`` string array (nulls kept)."""
    import pyarrow as pa

    col = table.column(name)
    col = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    return col if col.type == pa.string() else col.cast(pa.string())


def _stripped(arr):
    """Whitespace-trimmed text, ``null`` for null or blank (as ``validate._text``)."""
    import pyarrow.compute as pc

    arr = pc.utf8_trim_whitespace(arr)
    return pc.if_else(pc.equal(arr, ""), None, arr)


def _mask(arr) -> np.ndarray:
    import pyarrow.compute as pc

    return pc.fill_null(arr, False).to_numpy(zero_copy_only=False)


def cut_texts(text, cap: int):
    """Texts over ``cap`` characters cut as :func:`~interestrec.data.validate.cut_text` does, in Arrow; returns
    ``(texts, cut mask)``.

    Shapes:
        text: a ``pyarrow`` string array of ``n``; returns it cut and an ``(n,)`` bool array.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    from interestrec.data.validate import SPACE

    cut = pc.fill_null(pc.utf8_length(text), 0).to_numpy(zero_copy_only=False) > cap
    if not cut.any():
        return text, cut
    long = text.filter(pa.array(cut))
    words = pc.utf8_rtrim(pc.replace_substring_regex(pc.utf8_slice_codeunits(long, 0, cap + 1),
                                                     r"[^ \t\n\r\f\v]*$", "", max_replacements=1), characters=SPACE)
    chars = pc.utf8_rtrim(pc.utf8_slice_codeunits(long, 0, cap), characters=SPACE)
    short = pc.less(pc.utf8_length(words), cap // 2)
    return pc.replace_with_mask(text, pa.array(cut), pc.if_else(short, chars, words)), cut


def validate_table(batch, cfg: IngestConfig):
    """Parse and check a raw event batch (a ``pyarrow.Table`` in the raw event schema).

    Returns a ``pyarrow.Table`` with the columns and values of :func:`~interestrec.data.validate.validate_events`.
    """
    import pandas as pd
    import pyarrow as pa
    import pyarrow.compute as pc

    from interestrec.data.validate import parse_timestamps

    n = batch.num_rows
    given = _string(batch, "reason")
    reason = given.to_numpy(zero_copy_only=False).astype(object)
    open_ = np.array(given.is_null().to_numpy(zero_copy_only=False), dtype=bool)  # no reason yet
    user, item = _stripped(_string(batch, "user_id")), _stripped(_string(batch, "item_id"))
    ts_text, ev_text, val_text = (_stripped(_string(batch, c)) for c in ("timestamp", "event", "value"))
    event = pc.utf8_lower(ev_text)
    text = _string(batch, "text")

    def blank(arr) -> np.ndarray:
        return arr.is_null().to_numpy(zero_copy_only=False)

    def chars(ids) -> np.ndarray:
        return pc.fill_null(pc.utf8_length(ids), 0).to_numpy(zero_copy_only=False)

    has_value = ~blank(val_text)
    value = np.full(n, np.nan)
    if has_value.any():
        vals = val_text.filter(pa.array(has_value)).to_numpy(zero_copy_only=False).astype(object)
        value[has_value] = pd.to_numeric(pd.Series(vals, dtype=object), errors="coerce").to_numpy(
            dtype="float64", na_value=np.nan)
    t = parse_timestamps(ts_text)
    facts = RowFacts(blank_user=blank(user), blank_item=blank(item), blank_ts=blank(ts_text), blank_event=blank(ev_text),
                     blank_value=~has_value, blank_text=blank(_stripped(text)), user_chars=chars(user),
                     item_chars=chars(item), is_rate=_mask(pc.equal(event, "rate")), is_tag=_mask(pc.equal(event, "tag")),
                     known_event=_mask(pc.is_in(event, value_set=pa.array(list(EVENT_KINDS)))), value=value, ts=t)
    apply_rules(reason, open_, facts, cfg)

    raw = _string(batch, "raw").to_numpy(zero_copy_only=False).astype(object)
    no_raw = np.flatnonzero(pd.isna(raw) & ~open_)
    if len(no_raw):  # columnar sources carry no raw text: rebuild it for the rejects only
        take = pa.array(no_raw)
        cols = [a.take(take).to_pylist() for a in (user, item, ts_text, ev_text, val_text, text)]
        for k, i in enumerate(no_raw):
            raw[i] = ",".join("" if c[k] is None else str(c[k]) for c in cols)
    text, cut = cut_texts(text, cfg.max_text_chars)
    return pa.table({
        "source": _string(batch, "source"),
        "record": pc.cast(batch.column("record"), pa.int64()).combine_chunks(),
        "line": pc.cast(batch.column("line"), pa.int64()).combine_chunks(),
        "user_key": user, "item_key": item,
        "ts_int": t["int"], "ts_is_int": t["is_int"], "ts_float": t["float"], "ts_iso": t["iso"], "ts_is_iso": t["is_iso"],
        "event": pc.fill_null(event, ""),
        "value": value.astype(np.float32),
        "text": text,
        "cut": cut,
        "reason": pa.array(reason, pa.string()),
        "raw": pa.array(raw, pa.string()),
    })
