"""Review texts in item vectors, leak-free per evaluation phase.

A review is the non-empty ``text`` of an event whose kind is not ``tag`` or ``search`` (the review a
rate / view / click / purchase event carries). A phase's item vector blends the catalogue text's vector
with the mean of the item's reviews among the phase's training events (``encode.phases``: ``valid``
learns from ``train``, ``test`` from ``train`` + ``valid``, ``serve`` from every split)::

    v = normalize((1 - w) · v_catalogue + w · mean(v_review))        w = encode.review_weight

The reviews pooled are the item's newest ``encode.max_reviews_per_item`` within the phase's splits
(newest first; ties by user, then text). An item without reviews in a phase keeps its catalogue vector
unchanged, so a log without review texts (MovieLens) gives exactly the vectors it gives without them.
Each distinct review text is encoded once over all phases, through the Ray Data encoder pool
(``encode.ray_encode``) with ``encode.review_max_tokens`` tokens per text, ordered by length, in CPU
forward passes of at most ``encode.review_sub_tokens`` padded tokens.

:func:`select_reviews` / :func:`pool_reviews` / :func:`blend` are vectorised; :func:`select_reviews_reference`
and :func:`blend_reference` are the plain per-item loops they are tested equal to.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from interestrec.encode.config import EncodeConfig
from interestrec.encode.phases import PHASE_FILES, phase_splits

NOT_REVIEWS = ("tag", "search")
TEXT_EVENT_COLUMNS = ["user_id", "item_id", "timestamp", "event", "text", "split"]


@dataclass(frozen=True)
class Reviews:
    """Review events, one row each (arrays aligned).

    Shapes:
        item, user, timestamp: ``(r,)`` int64; split, text: ``(r,)`` object (text stripped, non-empty).
    """

    item: np.ndarray
    user: np.ndarray
    timestamp: np.ndarray
    split: np.ndarray
    text: np.ndarray

    def __len__(self) -> int:
        return len(self.item)

    def take(self, rows: np.ndarray) -> Reviews:
        """The rows ``rows`` (indices) of every array."""
        return Reviews(self.item[rows], self.user[rows], self.timestamp[rows], self.split[rows], self.text[rows])

    @staticmethod
    def concat(parts: list[Reviews]) -> Reviews:
        """The parts' rows one after another."""
        if not parts:
            return review_events(None)
        return Reviews(*(np.concatenate([getattr(p, f) for p in parts]) for f in
                         ("item", "user", "timestamp", "split", "text")))


def review_events(events) -> Reviews:
    """The review events of an events table (``TEXT_EVENT_COLUMNS``; ``split`` defaults to ``train``).

    Args:
        events: a pyarrow table, or ``None`` (no reviews).
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    if events is None or "text" not in events.column_names or not events.num_rows:
        return Reviews(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64),
                       np.zeros(0, object), np.zeros(0, object))
    text = pc.utf8_trim_whitespace(events["text"])
    keep = pc.and_(pc.invert(pc.is_in(events["event"], value_set=pa.array(NOT_REVIEWS))),
                   pc.greater(pc.utf8_length(text), 0))
    keep = pc.fill_null(keep, False)
    t = events.filter(keep)
    split = (np.asarray(t["split"].to_numpy(zero_copy_only=False), dtype=object) if "split" in t.column_names
             else np.full(t.num_rows, "train", dtype=object))
    return Reviews(t["item_id"].to_numpy().astype(np.int64), t["user_id"].to_numpy().astype(np.int64),
                   t["timestamp"].to_numpy().astype(np.int64), split,
                   np.asarray(text.filter(keep).to_numpy(zero_copy_only=False), dtype=object))


def select_reviews(rev: Reviews, splits: tuple[str, ...] | None, cap: int) -> np.ndarray:
    """Rows of each item's newest ``cap`` reviews among the splits ``splits`` (``None`` = every split).

    Order: item ascending, then newest first (ties by user, then text).

    Shapes:
        returns ``(m,)`` int64 row indices into ``rev``.
    """
    import pandas as pd

    rows = np.flatnonzero(np.ones(len(rev), bool) if splits is None else np.isin(rev.split.astype(str), list(splits)))
    if not len(rows):
        return rows.astype(np.int64)
    text_rank = pd.factorize(rev.text[rows], sort=True)[0]  # codes in lexicographic order
    order = rows[np.lexsort((text_rank, rev.user[rows], -rev.timestamp[rows], rev.item[rows]))]
    item = rev.item[order]
    first = np.r_[True, item[1:] != item[:-1]]
    start = np.maximum.accumulate(np.where(first, np.arange(len(order)), 0))
    return order[np.arange(len(order)) - start < cap].astype(np.int64)


def select_reviews_reference(rev: Reviews, splits: tuple[str, ...] | None, cap: int) -> np.ndarray:
    """:func:`select_reviews` as a plain loop over items (the reference it is tested equal to)."""
    by_item: dict[int, list[int]] = {}
    for r in range(len(rev)):
        if splits is None or str(rev.split[r]) in splits:
            by_item.setdefault(int(rev.item[r]), []).append(r)
    out = []
    for item in sorted(by_item):
        rows = sorted(by_item[item], key=lambda r: (-int(rev.timestamp[r]), int(rev.user[r]), str(rev.text[r])))
        out += rows[:cap]
    return np.asarray(out, np.int64)


def preselect(rev: Reviews, cap: int) -> Reviews:
    """The rows some phase may pool: each item's newest ``cap`` reviews for any phase's splits.

    Selecting from the union of per-part preselections gives what selecting from the whole log gives
    (an item's newest ``cap`` overall are among its newest ``cap`` of the part they come from), so a
    reader keeps only these rows of each part.
    """
    keep = np.unique(np.concatenate([select_reviews(rev, phase_splits(p), cap) for p in PHASE_FILES]))
    return rev.take(keep)


def read_text_events(path: str, cap: int, reviews: bool = True):
    """The tag events and the (preselected) review events of an events artifact, read part by part.

    Only ``TEXT_EVENT_COLUMNS`` of rows with a text are read, and of each part only its tag rows and the
    reviews :func:`preselect` keeps stay in memory: the log itself is never held here.

    Args:
        path: ``ingest/events.parquet`` (a file or a directory dataset).
        cap: ``encode.max_reviews_per_item``. reviews: ``False`` keeps no review rows.

    Returns:
        ``(tag events table (item_id, event, text, split), Reviews)``.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    from interestrec import artifacts

    tags, parts = [], []
    for f in artifacts.parquet_files(path):  # the ingest's events always have these columns (event_schema)
        t = artifacts.read_parquet(f, columns=TEXT_EVENT_COLUMNS, filters=pc.field("text").is_valid())
        tags.append(t.filter(pc.equal(t["event"], "tag")).select(["item_id", "event", "text", "split"]))
        if reviews:
            parts.append(preselect(review_events(t), cap))
    return pa.concat_tables(tags), Reviews.concat(parts)


def pool_reviews(item_pos: np.ndarray, text_idx: np.ndarray, text_vecs: np.ndarray,
                 n_items: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean review vector per item (a review counted as often as it is pooled).

    Shapes:
        item_pos, text_idx: ``(m,)`` (row of the item, row of the review's text in ``text_vecs``);
        text_vecs: ``(u, d)``; returns means ``(n_items, d)`` float64 (zeros without reviews) and counts
        ``(n_items,)`` int64.
    """
    import scipy.sparse as sp

    m = sp.csr_matrix((np.ones(len(item_pos)), (item_pos, text_idx)), shape=(n_items, len(text_vecs)))
    counts = np.bincount(item_pos, minlength=n_items).astype(np.int64)
    sums = np.asarray(m @ text_vecs.astype(np.float64))
    return sums / np.maximum(counts, 1)[:, None], counts


def blend(catalogue: np.ndarray, review_mean: np.ndarray, counts: np.ndarray, weight: float) -> np.ndarray:
    """``normalize((1 - w)·catalogue + w·review_mean)`` for items with reviews; the others unchanged.

    Shapes:
        catalogue, review_mean: ``(n, d)``; counts: ``(n,)``; returns ``(n, d)`` float32.
    """
    out = np.array(catalogue, dtype=np.float32, copy=True)
    has = np.flatnonzero(counts > 0)
    if len(has):
        v = (1.0 - weight) * catalogue[has].astype(np.float64) + weight * review_mean[has]
        norm = np.linalg.norm(v, axis=1, keepdims=True)
        if (norm <= 0).any():
            raise ValueError("blend: a blended item vector is zero (its reviews cancel its catalogue vector)")
        out[has] = (v / norm).astype(np.float32)
    return out


def blend_reference(catalogue: np.ndarray, reviews: list[list[np.ndarray]], weight: float) -> np.ndarray:
    """:func:`blend` item by item from each item's list of review vectors (the reference)."""
    out = []
    for cat, vs in zip(catalogue, reviews):
        if not vs:
            out.append(np.asarray(cat, np.float32))
            continue
        v = (1 - weight) * np.asarray(cat, np.float64) + weight * np.mean(np.asarray(vs, np.float64), axis=0)
        out.append((v / np.linalg.norm(v)).astype(np.float32))
    return np.asarray(out, np.float32).reshape(len(catalogue), -1)


@dataclass(frozen=True)
class PhaseReviews:
    """The review side of every phase's item vectors.

    Attributes:
        means: ``{phase: (n_items, d)}`` mean review vector (zeros for items without reviews).
        counts: ``{phase: (n_items,)}`` reviews pooled per item.
        stats: the encoder's :class:`~interestrec.encode.ray_encode.EncodeStats` over the distinct texts.
    """

    means: dict[str, np.ndarray]
    counts: dict[str, np.ndarray]
    stats: object



def review_summary(pr: PhaseReviews | None, weight: float) -> dict:
    """The encode summary's review entries: ``weight``; per phase ``items_with_reviews`` and ``pooled``
    (reviews pooled over all items); ``texts`` (the encoder's ``count, tokens, seconds, texts_per_s,
    tokens_per_s`` over the distinct review texts)."""
    from interestrec.encode.ray_encode import EncodeStats

    if pr is None:
        return {"weight": weight, "items_with_reviews": {p: 0 for p in PHASE_FILES},
                "pooled": {p: 0 for p in PHASE_FILES}, "texts": EncodeStats(0, 0, 0.0).summary()}
    return {"weight": weight, "items_with_reviews": {p: int((c > 0).sum()) for p, c in pr.counts.items()},
            "pooled": {p: int(c.sum()) for p, c in pr.counts.items()}, "texts": pr.stats.summary()}


def phase_reviews(rev: Reviews, item_ids: np.ndarray, cfg: EncodeConfig) -> PhaseReviews | None:
    """Select every phase's reviews, encode each distinct text once, pool them per item and phase.

    Returns ``None`` when no catalogue item has a review (nothing to blend).

    Shapes:
        item_ids: ``(n_items,)`` sorted catalogue ids.
    """
    import dataclasses

    import pandas as pd

    from interestrec.encode.ray_encode import encode_texts_timed
    from interestrec.ids import lookup

    pos = lookup(item_ids, rev.item)
    rev = rev.take(np.flatnonzero(pos >= 0))
    pos = pos[pos >= 0]
    if not len(rev):
        return None
    sel = {p: select_reviews(rev, phase_splits(p), cfg.max_reviews_per_item) for p in PHASE_FILES}
    used = np.unique(np.concatenate(list(sel.values())))
    codes, unique = pd.factorize(rev.text[used])
    text_idx = np.full(len(rev), -1, np.int64)
    text_idx[used] = codes
    review_cfg = dataclasses.replace(cfg, max_tokens=cfg.review_max_tokens)
    _, vecs, stats = encode_texts_timed(np.arange(len(unique)), [str(t) for t in unique], review_cfg,
                                        label="encode: review texts", by_length=True,
                                        cpu_sub_tokens=cfg.review_sub_tokens)
    means, counts = {}, {}
    for p, rows in sel.items():
        means[p], counts[p] = pool_reviews(pos[rows], text_idx[rows], vecs, len(item_ids))
    return PhaseReviews(means, counts, stats)
