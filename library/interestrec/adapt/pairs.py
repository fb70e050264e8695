"""Self-supervised training pairs from *train* events only, and leak-free item text.

A pair is ``(anchor items, positive item)``: the anchor is a list of item ids, newest first.
``context`` pairs: a user's last ``context_items`` items → the user's next item; ``cooccur`` pairs: an
item → the item the user interacted with next. Only interaction events whose ingest ``split`` is
``train`` are read, so neither the validation nor the test item of any user (nor anything after them)
can reach the adapted model. Item text is title, year and genres only: tags come from events and could
carry the future.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from interestrec.data.schema import INTERACTION_KINDS


@dataclass(frozen=True)
class Pairs:
    """Training pairs in item-id space.

    Shapes:
        anchor: ``(n, context_items)`` int64 item ids, newest first, ``-1`` padded;
        positive: ``(n,)`` int64 item ids; kind: ``(n,)`` str (``context`` / ``cooccur``).
    """

    anchor: np.ndarray
    positive: np.ndarray
    kind: np.ndarray

    def __len__(self) -> int:
        return len(self.positive)


def leak_free_texts(items) -> tuple[np.ndarray, list[str]]:
    """Sorted item ids and their text without event-derived parts (title, year, genres; no tags).

    Args:
        items: the ingest ``items`` table (pyarrow).
    """
    from interestrec.encode.text import item_text

    d = items.select(["item_id", "title", "year", "genres"]).to_pydict()
    ids = np.asarray(d["item_id"], np.int64)
    if len(np.unique(ids)) != len(ids):
        raise ValueError("adapt: items table has duplicate item_id values")
    texts = [item_text(t, y, g, tags=None) for t, y, g in zip(d["title"], d["year"], d["genres"])]
    order = np.argsort(ids, kind="stable")
    return ids[order], [texts[i] for i in order]


def train_sequences(events) -> tuple[np.ndarray, np.ndarray]:
    """Users' train interactions in time order: ``(user_id, item_id)`` sorted by user, time, item.

    Only rows with ``split == "train"`` and an interaction event kind are kept.

    Shapes:
        returns two ``(m,)`` int64 arrays.
    """
    if "split" not in events.column_names:
        raise ValueError("adapt: events have no 'split' column (run the ingest stage first)")
    ev = events.select(["user_id", "item_id", "timestamp", "event", "split"]).to_pandas()
    ev = ev[(ev.split == "train") & ev.event.isin(INTERACTION_KINDS)]
    u, i, t = ev.user_id.to_numpy(np.int64), ev.item_id.to_numpy(np.int64), ev.timestamp.to_numpy(np.int64)
    order = np.lexsort((i, t, u))
    return u[order], i[order]


def build_pairs(user: np.ndarray, item: np.ndarray, kinds: tuple[str, ...], context_items: int, max_pairs: int,
                seed: int = 0) -> Pairs:
    """Pairs from time-ordered per-user sequences, a seeded sample of at most ``max_pairs``.

    Every position ``t >= 1`` of a user's sequence gives one pair per kind; kinds share ``max_pairs``
    equally (a kind with fewer pairs leaves its share to the others).

    Shapes:
        user, item: ``(m,)`` sorted by user then time (:func:`train_sequences`).
    """
    user, item = np.asarray(user, np.int64), np.asarray(item, np.int64)
    pos = np.flatnonzero(np.r_[False, user[1:] == user[:-1]])  # t >= 1 inside a user's sequence
    starts = np.flatnonzero(np.r_[True, user[1:] != user[:-1]]) if len(user) else np.zeros(0, np.int64)
    first = starts[np.searchsorted(starts, pos, side="right") - 1] if len(pos) else pos
    per_kind: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    if "context" in kinds:
        anchor = np.full((len(pos), context_items), -1, np.int64)
        for k in range(context_items):
            src = pos - 1 - k
            ok = src >= first
            anchor[ok, k] = item[src[ok]]
        per_kind["context"] = (anchor, item[pos])
    if "cooccur" in kinds:
        anchor = np.full((len(pos), context_items), -1, np.int64)
        anchor[:, 0] = item[pos - 1]
        keep = anchor[:, 0] != item[pos]
        per_kind["cooccur"] = (anchor[keep], item[pos][keep])
    rng = np.random.default_rng(seed)
    sizes = {k: len(v[1]) for k, v in per_kind.items()}
    quota, left = {}, max_pairs
    for n_left, k in enumerate(sorted(sizes, key=sizes.get), start=0):
        share = left // (len(sizes) - n_left)
        quota[k] = min(sizes[k], share)
        left -= quota[k]
    anchors, positives, kind = [], [], []
    for k in sorted(per_kind):
        a, p = per_kind[k]
        sel = np.sort(rng.choice(len(p), size=quota[k], replace=False)) if quota[k] < len(p) else np.arange(len(p))
        anchors.append(a[sel])
        positives.append(p[sel])
        kind.append(np.full(len(sel), k, dtype=object))
    if not anchors:
        return Pairs(np.zeros((0, context_items), np.int64), np.zeros(0, np.int64), np.zeros(0, object))
    return Pairs(np.concatenate(anchors), np.concatenate(positives), np.concatenate(kind))


def pairs_from_ingest(events, kinds: tuple[str, ...], context_items: int, max_pairs: int, seed: int = 0) -> Pairs:
    """:func:`build_pairs` over the ingest events' train split."""
    user, item = train_sequences(events)
    return build_pairs(user, item, kinds, context_items, max_pairs, seed)


def to_table(pairs: Pairs):
    """Pairs as a pyarrow table (``anchor`` list<int64>, ``positive``, ``kind``) for the workers."""
    import pyarrow as pa

    flat = pa.array(pairs.anchor.reshape(-1), pa.int64())
    anchor = pa.FixedSizeListArray.from_arrays(flat, pairs.anchor.shape[1])
    return pa.table({"anchor": anchor, "positive": pa.array(pairs.positive, pa.int64()),
                     "kind": pa.array(pairs.kind.astype(str), pa.string())})


def from_table(table) -> Pairs:
    """Inverse of :func:`to_table`."""
    col = table["anchor"].combine_chunks()
    width = col.type.list_size
    anchor = col.flatten().to_numpy().astype(np.int64).reshape(-1, width)
    return Pairs(anchor, table["positive"].to_numpy().astype(np.int64), np.asarray(table["kind"].to_pylist(), object))


def anchor_text(anchor_ids: np.ndarray, text_of: dict[int, str]) -> str:
    """The anchor items' texts joined newest first (the encode stage's history separator)."""
    from interestrec.encode.text import SEP

    return SEP.join(text_of[int(i)] for i in anchor_ids if i >= 0)
