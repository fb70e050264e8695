"""The fused model's LLM term scored at the item level: the user's last items vote for similar items.

``interest``: ``max_m cos(interest_m(u), v_j)`` over the user's interest vectors (the user-level form);
``item_max``: ``max_p w_p · cos(v_{h(p)}, v_j)``; ``item_sum``: ``Σ_p w_p · cos(v_{h(p)}, v_j)`` — over the
user's last ``last`` history items ``h(p)``, ``w_p = 0.5^(steps from the newest / half_life)``
(PinnerSage and Harte et al., RecSys'23, found item-level similarity to the recent history stronger than a
user mean). :func:`item_level_reference` is the plain per-pair form :func:`item_level_scores` is tested against.
"""

from __future__ import annotations

import numpy as np

LLM_MODES = ("interest", "item_max", "item_sum")


def _recent(history: np.ndarray, last: int, half_life: float) -> tuple[np.ndarray, np.ndarray]:
    from interestrec.recommend.itemitem import recency_weights

    h = np.asarray(history, np.int64)[-last:] if last > 0 else np.asarray(history, np.int64)
    return h, recency_weights(len(h), half_life)


class SimilarityRows:
    """Cosine rows ``v_i · Vᵀ`` of the items asked for, the ``capacity`` most recently used kept (thread-safe).

    A serving replica scores small batches, so the item-level term's product ``(b·last, d) @ (d, n_items)`` is
    most of a request's arithmetic, while users' recent items overlap heavily; a row is computed once, by the
    same product, and reused. Memory: ``capacity × n_items × 4`` bytes (:meth:`for_budget` sizes it in MiB).

    Shapes:
        item_vecs: ``(n_items, d)``; :meth:`rows` of ``(m,)`` indices returns ``(m, n_items)`` float32.
    """

    def __init__(self, item_vecs: np.ndarray, capacity: int) -> None:
        import collections
        import threading

        if capacity < 1:
            raise ValueError(f"SimilarityRows needs a capacity of at least 1, got {capacity}")
        self.item_vecs = np.asarray(item_vecs, np.float32)
        self.vecs_t = np.ascontiguousarray(self.item_vecs.T)  # (d, n): the product's fast layout
        self.capacity = int(capacity)
        self._rows: collections.OrderedDict[int, np.ndarray] = collections.OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    @classmethod
    def for_budget(cls, item_vecs: np.ndarray, mib: float) -> SimilarityRows:
        """A cache holding as many rows as ``mib`` MiB allow (at least one)."""
        row_bytes = 4 * max(len(item_vecs), 1)
        return cls(item_vecs, max(1, int(mib * 2**20) // row_bytes))

    def lookup(self, items: np.ndarray) -> dict[int, np.ndarray]:
        """Each distinct index of ``items`` → its row (read-only; cached, or computed and cached now)."""
        wanted = dict.fromkeys(np.asarray(items, np.int64).ravel().tolist())
        with self._lock:
            have = {i: self._rows[i] for i in wanted if i in self._rows}
        missing = [i for i in wanted if i not in have]
        if missing:
            fresh = self.item_vecs[missing] @ self.vecs_t
            fresh.flags.writeable = False
            have.update(zip(missing, fresh))
        with self._lock:
            self.hits += len(wanted) - len(missing)
            self.misses += len(missing)
            for i in wanted:
                self._rows[i] = have[i]
                self._rows.move_to_end(i)
            while len(self._rows) > self.capacity:
                self._rows.popitem(last=False)
        return have

    def warm(self, items: np.ndarray, chunk: int = 512) -> int:
        """Compute the rows of ``items`` (most wanted first) ahead of requests, at most :attr:`capacity` of
        them, ``chunk`` rows per product. Returns how many rows the cache holds."""
        items = np.asarray(items, np.int64).ravel()[: self.capacity]
        for lo in range(len(items) - 1 if len(items) else 0, -1, -chunk):  # least wanted first: they age out first
            self.lookup(items[max(lo - chunk + 1, 0) : lo + 1])
        return len(self._rows)

    def rows(self, items: np.ndarray) -> np.ndarray:
        items = np.asarray(items, np.int64).ravel()
        have = self.lookup(items)
        out = np.empty((len(items), len(self.item_vecs)), np.float32)
        for r, i in enumerate(items.tolist()):
            out[r] = have[i]
        return out


def recent_items(history: list[np.ndarray], last: int) -> np.ndarray:
    """Items in users' last ``last`` history positions, the most shared first (what the item-level LLM term
    will ask for). Shapes: history[u] ``(h_u,)``; returns ``(m,)`` distinct indices."""
    tails = [np.asarray(h[-last:], np.int64) for h in history if len(h)]
    if not tails:
        return np.zeros(0, np.int64)
    items, counts = np.unique(np.concatenate(tails), return_counts=True)
    return items[np.argsort(-counts, kind="stable")]


def _weighted_max(rows: list[np.ndarray], weights: np.ndarray) -> np.ndarray:
    """``max_p w_p · rows[p]`` elementwise, in place over one buffer. Shapes: rows[p] ``(n,)``; returns ``(n,)``."""
    best = np.multiply(rows[0], np.float32(weights[0]))
    tmp = np.empty_like(best)
    for row, w in zip(rows[1:], weights[1:]):
        np.maximum(best, np.multiply(row, np.float32(w), out=tmp), out=best)
    return best


def item_level_scores(item_vecs: np.ndarray, histories: list[np.ndarray], mode: str = "item_max", last: int = 20,
                      half_life: float = 5.0, chunk: int = 64, rows: SimilarityRows | None = None) -> np.ndarray:
    """Item-level LLM scores of every item for each history (oldest item first); empty histories score 0.

    ``rows`` (a :class:`SimilarityRows` over the same ``item_vecs``) serves the similarity rows from its cache
    instead of the product (the same numbers up to float rounding, tested against this path). Without it,
    ``item_max`` scales each query vector by its weight first (``w·(v_p·v_j) = (w·v_p)·v_j``, ``w > 0``) and
    pads short histories with their own first item (a repeat cannot change a max), so one product and one
    max give the scores.

    Shapes:
        item_vecs: ``(n_items, d)``; histories[b]: ``(h_b,)`` item indices; returns ``(b, n_items)`` float32.
    """
    if mode not in ("item_max", "item_sum"):
        raise ValueError(f"item_level_scores: mode must be 'item_max' or 'item_sum', got '{mode}'")
    iv = rows.item_vecs if rows is not None else np.asarray(item_vecs, np.float32)
    out = np.zeros((len(histories), len(iv)), np.float32)
    recent = [_recent(h, last, half_life) for h in histories]
    if rows is not None:
        have = rows.lookup(np.concatenate([h for h, _ in recent]) if recent else np.zeros(0, np.int64))
        for b, (h, w) in enumerate(recent):
            if len(h) and mode == "item_max":
                out[b] = _weighted_max([have[i] for i in h.tolist()], w)
            elif len(h):
                out[b] = np.asarray(w, np.float32) @ np.stack([have[i] for i in h.tolist()])
        return out
    if mode == "item_sum":
        for b, (h, w) in enumerate(recent):
            if len(h):
                out[b] = iv @ (w.astype(np.float32) @ iv[h])
        return out
    for lo in range(0, len(recent), chunk):
        part = [(lo + r, h, w) for r, (h, w) in enumerate(recent[lo : lo + chunk]) if len(h)]
        width = max((len(h) for _, h, _ in part), default=0)
        if width == 0:
            continue
        idx = np.empty((len(part), width), np.int64)
        wt = np.empty((len(part), width), np.float32)
        for r, (_, h, w) in enumerate(part):
            idx[r], wt[r] = h[0], w[0]  # padding: the first item again
            idx[r, : len(h)], wt[r, : len(h)] = h, w
        queries = iv[idx.ravel()] * wt.reshape(-1, 1)  # (len(part)·width, d)
        sims = iv @ queries.T  # (n_items, len(part)·width): no transposed copy of the catalogue per call
        out[[b for b, _, _ in part]] = sims.reshape(len(iv), len(part), width).max(2).T
    return out


def item_level_reference(item_vecs: np.ndarray, history: np.ndarray, j: int, mode: str = "item_max", last: int = 20,
                         half_life: float = 5.0) -> float:
    """One (history, item) score written out plainly (the reference for :func:`item_level_scores`)."""
    h = list(history)[-last:] if last > 0 else list(history)
    if not h:
        return 0.0
    terms = []
    for pos, i in enumerate(h):
        steps = len(h) - 1 - pos
        weight = 1.0 if half_life <= 0 else 0.5 ** (steps / half_life)
        terms.append(weight * float(np.dot(item_vecs[int(i)], item_vecs[j])))
    return max(terms) if mode == "item_max" else sum(terms)


def interest_scores(item_vecs: np.ndarray, interests: list[np.ndarray]) -> np.ndarray:
    """The user-level form: max cosine over each user's interest vectors (0 without interests).

    Shapes:
        interests[b]: ``(m_b, d)``; returns ``(b, n_items)`` float32.
    """
    n = len(item_vecs)
    if not interests:
        return np.zeros((0, n), np.float32)
    return np.stack([(m @ item_vecs.T).max(0) if len(m) else np.zeros(n, np.float32) for m in interests]).astype(np.float32)


def llm_scores(mode: str, item_vecs: np.ndarray, interests: list[np.ndarray], histories: list[np.ndarray],
               last: int = 20, half_life: float = 5.0, rows: SimilarityRows | None = None) -> np.ndarray:
    """The fused model's LLM term in ``mode`` (one of :data:`LLM_MODES`; ``rows``: as in
    :func:`item_level_scores`). Shapes: returns ``(b, n_items)``."""
    if mode == "interest":
        return interest_scores(item_vecs, interests)
    if mode not in LLM_MODES:
        raise ValueError(f"llm mode must be one of {LLM_MODES}, got '{mode}'")
    return item_level_scores(item_vecs, histories, mode, last, half_life, rows=rows)
