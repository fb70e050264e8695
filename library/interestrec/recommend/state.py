"""Real-time user state: fresh events applied with decay (no Ray, no I/O).

A user's state after fresh events is their interest vectors scaled by ``decay_factor`` plus one new
interest per batch of events (the batch's recency- and kind-weighted mean item vector, weighted by
:func:`interestrec.encode.pooling.event_weights` exactly as the batch pipeline weighs history), the
cluster nearest to the newest batch, and the items they touched (filtered from later recommendations).

The events themselves live in a durable store (:mod:`interestrec.serving.store`); a replica reads a
user's newest events (bounded) and folds them with :func:`fold_batches`, so every replica computes the
same state from the same acknowledged events, in the store's sequence order.

An event may name a live-catalogue item (:class:`~interestrec.recommend.live.LiveId`, added while serving):
its vector (the encoder's, from ``POST /items``) moves the interests like a catalogue item's, and it is kept
in the state's history as the ``LiveId`` (:func:`catalogue_items` leaves such items out where only the
catalogue has rows).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from interestrec.encode.config import HALF_LIFE_DAYS
from interestrec.encode.pooling import decay, event_weights
from interestrec.recommend.live import LiveId


@dataclass
class UserState:
    """A user's real-time state.

    Shapes:
        interests: ``(m, d)`` float32 unit rows.
    """

    interests: np.ndarray
    cluster: int
    history: list[int | LiveId] = field(default_factory=list)  # items touched by fresh events, oldest first
    events: int = 0


def events_vector(item_vecs: np.ndarray, kinds: Sequence[str], timestamps: np.ndarray, half_life_days: float,
                  values: Sequence[float | None] | None = None) -> np.ndarray:
    """Recency-decayed, kind-weighted mean of ``item_vecs``, unit length (zeros when empty).

    Weights: :func:`~interestrec.encode.pooling.event_weights` (ratings scaled by ``values``) times
    :func:`~interestrec.encode.pooling.decay` relative to the newest event.

    Shapes:
        item_vecs: ``(n, d)``; timestamps: ``(n,)`` seconds; returns ``(d,)`` float32.
    """
    if len(item_vecs) == 0:
        return np.zeros(item_vecs.shape[1], np.float32)
    ts = np.asarray(timestamps, np.float64)
    vals = None if values is None else np.array([np.nan if v is None else float(v) for v in values])
    w = event_weights(np.asarray(list(kinds), dtype=object), vals) * decay(ts, ts.max(), half_life_days)
    v = (w[:, None] * item_vecs).sum(0)
    return (v / max(float(np.linalg.norm(v)), 1e-12)).astype(np.float32)


def nearest_cluster(centroids: np.ndarray, vector: np.ndarray) -> int:
    """Index of the centroid with the highest cosine to ``vector``. Shapes: centroids ``(K, d)``, vector ``(d,)``."""
    c = centroids / np.maximum(np.linalg.norm(centroids, axis=1, keepdims=True), 1e-12)
    return int(np.argmax(c @ vector))


def apply_events(base: UserState, item_vecs: np.ndarray, item_ids: list[int | LiveId], kinds: list[str],
                 timestamps: list[float], centroids: np.ndarray, decay_factor: float = 0.7,
                 half_life_days: float = HALF_LIFE_DAYS, max_interests: int = 8,
                 values: Sequence[float | None] | None = None) -> UserState:
    """The state after fresh events: old interests × ``decay_factor``, the events' vector as the newest interest.

    At most ``max_interests`` interests are kept (the oldest fresh ones are dropped first). ``item_ids``:
    catalogue item ids, or :class:`LiveId` for live-catalogue items (kept as they are in the history).

    Shapes:
        item_vecs: ``(n, d)`` vectors of the events' items, in event order.
    """
    if not 0.0 < decay_factor <= 1.0:
        raise ValueError(f"decay_factor must be in (0, 1], got {decay_factor}")
    fresh = events_vector(item_vecs, kinds, np.asarray(timestamps, np.float64), half_life_days, values)
    old = base.interests * decay_factor
    its = np.vstack([old, fresh[None, :]]) if len(old) else fresh[None, :]
    if len(its) > max_interests:
        its = np.vstack([its[: max_interests - 1], its[-1:]]) if max_interests > 1 else its[-1:]
    its = its / np.maximum(np.linalg.norm(its, axis=1, keepdims=True), 1e-12)
    touched = [i if isinstance(i, LiveId) else int(i) for i in item_ids]
    return UserState(its.astype(np.float32), nearest_cluster(centroids, fresh), base.history + touched,
                     base.events + len(item_ids))


def fold_events(base: UserState, events: Sequence, positions: np.ndarray, item_vecs: np.ndarray,
                centroids: np.ndarray, decay_factor: float = 0.7,
                half_life_days: float = HALF_LIFE_DAYS) -> UserState:
    """``base`` after stored events (sequence order; each batch applied with :func:`apply_events`), each
    event's item vector ``item_vecs[positions[e]]``; an event at position ``-1`` (an item this version does
    not know, a live item not served here yet) is skipped, a batch left empty changes nothing.

    Shapes:
        positions: ``(len(events),)`` int64; item_vecs: ``(n, d)`` (catalogue, then live items).
    """
    state, pos, start = base, np.asarray(positions, np.int64), 0
    for batch in group_batches(events):  # consecutive runs of ``events``: slices of ``pos`` in step
        p, start = pos[start : start + len(batch)], start + len(batch)
        keep = [e for e, q in zip(batch, p) if q >= 0]
        if keep:
            state = apply_events(state, item_vecs[p[p >= 0]], [e.item_id for e in keep],
                                 [e.event for e in keep], [float(e.timestamp) for e in keep], centroids,
                                 decay_factor, half_life_days, values=[e.value for e in keep])
    return state


def catalogue_items(items: Sequence) -> list[int]:
    """The catalogue item ids of a state's history (live-catalogue items, :class:`LiveId`, left out)."""
    return [int(i) for i in items if not isinstance(i, LiveId)]


def group_batches(events: Sequence) -> list[list]:
    """Consecutive events of one batch together (events carry ``batch``, in sequence order)."""
    out: list[list] = []
    last = object()
    for e in events:
        if e.batch != last:
            out.append([])
            last = e.batch
        out[-1].append(e)
    return out
