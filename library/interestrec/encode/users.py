"""Pool-mode user rows of one events table: whole-history vectors with interests, and per-window vectors.

Every function here reads only the events it is given, and a user's rows depend only on that user's
events, so any split of the log into user-disjoint parts (the ingest's ``events.parquet`` partitions)
gives the same rows as the whole log (:mod:`interestrec.encode.ray_pool` runs one part per Ray task;
``tests/test_encode_partitioned.py`` checks the two agree).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from interestrec.encode.config import EncodeConfig
from interestrec.encode.interest_batch import InterestBatch, batch_interests
from interestrec.encode.pooling import decay, event_weights, pool_user_vectors, window_user_vectors
from interestrec.ids import lookup

EVENT_COLUMNS = ["user_id", "item_id", "timestamp", "event", "value", "text", "split"]


def known_events(events, item_ids: np.ndarray):
    """Events as a DataFrame with ``iidx`` (row of ``item_ids``); events of unknown items dropped and counted."""
    cols = ["user_id", "item_id", "timestamp", "event", "value", "text"]
    ev = events.select(cols + (["split"] if "split" in events.column_names else [])).to_pandas()
    pos = lookup(item_ids, ev.item_id.to_numpy())
    known = pos >= 0
    ev = ev[known].assign(iidx=pos[known])
    return ev, int((~known).sum())


def train_user_vectors(ev, item_ids: np.ndarray, item_vecs: np.ndarray,
                       cfg: EncodeConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray, InterestBatch]:
    """Pooled ``window = -1`` vectors and interests from train events, decayed to each user's last event.

    Shapes:
        returns users ``(u,)`` (sorted), vectors ``(u, d)``, n_events ``(u,)`` and the users' interests.
    """
    users, uidx = np.unique(ev.user_id.to_numpy(), return_inverse=True)
    uidx = uidx.reshape(-1)
    ts = ev.timestamp.to_numpy()
    pos = ev.iidx.to_numpy()
    last = np.full(len(users), np.iinfo(np.int64).min, np.int64)
    np.maximum.at(last, uidx, ts)
    w = event_weights(ev.event.to_numpy(), ev.value.to_numpy(dtype=np.float64, na_value=np.nan))
    vec, n = pool_user_vectors(uidx, pos, ts, w, item_vecs, len(users), last[uidx], cfg.half_life_days)
    dw = w * decay(ts, last[uidx], cfg.half_life_days)
    interests = batch_interests(uidx, ts, pos, item_ids, item_vecs, dw, len(users), cfg.max_interests,
                                max_distance=cfg.interest_distance)
    return users, vec, n, interests


def interest_type():
    """Arrow type of the ``interests`` column."""
    import pyarrow as pa

    return pa.list_(pa.struct([("vector", pa.list_(pa.float32())), ("medoid_item_id", pa.int64()),
                               ("importance", pa.float32()), ("size", pa.int32())]))


@dataclass(frozen=True)
class PoolCounts:
    """What one events table contributed (summed over parts by the stage)."""

    users: int
    window_rows: int
    users_without_train_events: int
    events_unknown_item: int
    interests: int
    max_interests: int


def pool_rows(events, item_ids: np.ndarray, train_vecs: np.ndarray, serve_vecs: np.ndarray, windows,
              cfg: EncodeConfig):
    """The ``users.parquet`` rows of the users in ``events``: ``window = -1`` rows (train events, the
    ``valid`` phase's item vectors, interests) then per-window rows (serving item vectors).

    Args:
        events: ingest events (``EVENT_COLUMNS``). item_ids: sorted catalog ids, rows of both vector arrays.
        windows: the ingest ``windows`` table.

    Returns:
        ``(table user_id, window, vector, n_events, interests; PoolCounts)``.

    Shapes:
        item_ids: ``(n_items,)``; train_vecs, serve_vecs: ``(n_items, d)``.
    """
    import pyarrow as pa

    from interestrec.artifacts import vectors_to_arrow

    ev, unknown = known_events(events, item_ids)
    train = ev[ev.split == "train"]
    users, vec, n_ev, its = train_user_vectors(train, item_ids, train_vecs, cfg)
    keep = np.linalg.norm(vec, axis=1) > 0  # a user whose train events all weigh 0 has no vector, never NaN
    if not keep.all():
        per_user = np.diff(its.offsets)
        rows = np.repeat(keep, per_user)
        its = InterestBatch(np.concatenate([[0], np.cumsum(per_user[keep])]), its.vectors[rows],
                            its.medoid_item_id[rows], its.importance[rows], its.size[rows])
    train_rows = pa.table({"user_id": pa.array(users[keep], pa.int64()),
                           "window": pa.array(np.full(int(keep.sum()), -1), pa.int32()),
                           "vector": vectors_to_arrow(vec[keep]), "n_events": pa.array(n_ev[keep], pa.int32()),
                           "interests": its.to_arrow().cast(interest_type())})
    win = window_user_vectors(events, item_ids, serve_vecs, windows, cfg.lookback_days, cfg.half_life_days)
    win = win.append_column("interests", pa.nulls(win.num_rows, interest_type()))
    all_users = np.unique(events["user_id"].to_numpy())
    per_user = np.diff(its.offsets)
    counts = PoolCounts(int(keep.sum()), int(win.num_rows), int(len(np.setdiff1d(all_users, users))), unknown,
                        int(per_user.sum()), int(per_user.max(initial=0)))
    return pa.concat_tables([train_rows, win]), counts
