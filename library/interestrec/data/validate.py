"""Row validation: every raw event row is accepted or rejected with exactly one reason.

Pure functions over pandas batches, called from a Ray Data ``map_batches`` so validation shards across
the cluster. Reasons are checked in a fixed order (the first that applies wins): undecodable_bytes,
missing_field, unparsable_number, unknown_event, timestamp_out_of_range, rating_out_of_range,
unknown_item, oversize_text. Exact duplicates need a global view and are found afterwards by
:func:`mark_duplicates`.
"""

from __future__ import annotations

import numpy as np

from interestrec.data.config import IngestConfig
from interestrec.data.schema import EVENT_KINDS


def _blank(s) -> np.ndarray:
    return s.isna().to_numpy() | (s.astype("string").str.strip() == "").fillna(True).to_numpy()


def _to_number(s):
    import pandas as pd

    return pd.to_numeric(s.astype("string").str.strip(), errors="coerce")


def validate_events(batch, cfg: IngestConfig, known_items: np.ndarray | None):
    """Parse and check a raw event batch (pandas DataFrame in the raw event schema).

    Returns the batch with typed columns ``user_id, item_id, timestamp`` (int64), ``value`` (float32),
    ``event``/``text`` (str) and ``reason`` (``None`` when accepted). ``raw``/``source``/``line`` are kept
    so rejects can be written with the original row.
    """
    import pandas as pd

    reason = batch["reason"].astype(object).where(batch["reason"].notna(), None).to_numpy(dtype=object).copy()

    def flag(mask: np.ndarray, why: str) -> None:
        m = mask & pd.isna(reason)
        reason[m] = why

    event = batch["event"].astype("string").str.strip().str.lower()
    is_rate = (event == "rate").fillna(False).to_numpy()
    missing = _blank(batch["user_id"]) | _blank(batch["item_id"]) | _blank(batch["timestamp"]) | _blank(batch["event"])
    missing |= is_rate & _blank(batch["value"])
    missing |= (event == "tag").fillna(False).to_numpy() & _blank(batch["text"])
    flag(missing, "missing_field")

    user = _to_number(batch["user_id"])
    item = _to_number(batch["item_id"])
    ts = _to_number(batch["timestamp"])
    value = _to_number(batch["value"])
    bad_number = user.isna() | item.isna() | ts.isna()
    bad_number |= (user % 1 != 0) | (item % 1 != 0)
    bad_number = bad_number.fillna(True).to_numpy()
    bad_number |= (~_blank(batch["value"])) & value.isna().to_numpy()
    flag(bad_number, "unparsable_number")
    flag(~event.isin(EVENT_KINDS).fillna(False).to_numpy(), "unknown_event")
    tsv = ts.to_numpy(dtype="float64", na_value=np.nan)
    flag(~((tsv >= cfg.min_timestamp) & (tsv <= cfg.max_timestamp)), "timestamp_out_of_range")
    vv = value.to_numpy(dtype="float64", na_value=np.nan)
    flag(is_rate & ~((vv >= cfg.rating_min) & (vv <= cfg.rating_max)), "rating_out_of_range")
    iv = item.to_numpy(dtype="float64", na_value=np.nan)
    if known_items is not None:
        flag(~np.isin(np.nan_to_num(iv, nan=-1).astype(np.int64), known_items), "unknown_item")
    text_len = batch["text"].astype("string").str.len().fillna(0).to_numpy()
    flag(text_len > cfg.max_text_chars, "oversize_text")

    ok = pd.isna(reason)
    out = pd.DataFrame(
        {
            "source": batch["source"].astype(str).to_numpy(),
            "line": batch["line"].astype("int64").to_numpy(),
            "user_id": np.where(ok, np.nan_to_num(user.to_numpy(dtype="float64", na_value=0)), 0).astype(np.int64),
            "item_id": np.where(ok, np.nan_to_num(iv), 0).astype(np.int64),
            "timestamp": np.where(ok, np.nan_to_num(tsv), 0).astype(np.int64),
            "event": event.fillna("").astype(str).to_numpy(),
            "value": vv.astype(np.float32),
            "text": batch["text"].astype(object).where(batch["text"].notna(), None).to_numpy(dtype=object),
            "reason": reason,
            "raw": batch["raw"].astype(object).to_numpy(dtype=object),
        }
    )
    return out


def mark_duplicates(user, item, ts, event, value, text) -> np.ndarray:
    """Boolean mask of rows that exactly repeat an earlier row (the first occurrence is kept).

    Shapes:
        all inputs: ``(n,)`` in file order; returns ``(n,)`` bool.
    """
    import pandas as pd

    frame = pd.DataFrame({"u": user, "i": item, "t": ts, "e": event, "v": value, "x": text})
    return frame.duplicated(keep="first").to_numpy()
