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
    same product, and reused. Memory: ``capacity × n_items × 4`` bytes.

    Shapes:
        item_vecs: ``(n_items, d)``; :meth:`rows` of ``(m,)`` indices returns ``(m, n_items)`` float32.
    """

    def __init__(self, item_vecs: np.ndarray, capacity: int) -> None:
        import collections
        import threading

        if capacity < 1:
            raise ValueError(f"SimilarityRows needs a capacity of at least 1, got {capacity}")
        self.item_vecs = np.asarray(item_vecs, np.float32)
        self.capacity = int(capacity)
        self._rows: collections.OrderedDict[int, np.ndarray] = collections.OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def rows(self, items: np.ndarray) -> np.ndarray:
        items = np.asarray(items, np.int64).ravel()
        with self._lock:
            have = {int(i): self._rows[int(i)] for i in set(items.tolist()) if int(i) in self._rows}
        missing = np.array(sorted(set(items.tolist()) - set(have)), np.int64)
        if len(missing):
            fresh = self.item_vecs[missing] @ self.item_vecs.T
            have.update({int(i): fresh[r] for r, i in enumerate(missing)})
        with self._lock:
            self.hits += len(items) - len(missing)
            self.misses += len(missing)
            for i in dict.fromkeys(items.tolist()):
                self._rows[i] = have[i]
                self._rows.move_to_end(i)
            while len(self._rows) > self.capacity:
                self._rows.popitem(last=False)
        out = np.empty((len(items), len(self.item_vecs)), np.float32)
        for r, i in enumerate(items.tolist()):
            out[r] = have[i]
        return out


def item_level_scores(item_vecs: np.ndarray, histories: list[np.ndarray], mode: str = "item_max", last: int = 20,
                      half_life: float = 5.0, chunk: int = 64, rows: SimilarityRows | None = None) -> np.ndarray:
    """Item-level LLM scores of every item for each history (oldest item first); empty histories score 0.

    ``rows`` (a :class:`SimilarityRows` over the same ``item_vecs``) serves the similarity rows from its cache
    instead of the product (the same numbers up to float rounding, tested against this path).

    Shapes:
        item_vecs: ``(n_items, d)``; histories[b]: ``(h_b,)`` item indices; returns ``(b, n_items)`` float32.
    """
    if mode not in ("item_max", "item_sum"):
        raise ValueError(f"item_level_scores: mode must be 'item_max' or 'item_sum', got '{mode}'")
    iv = np.asarray(item_vecs, np.float32)
    out = np.zeros((len(histories), len(iv)), np.float32)
    recent = [_recent(h, last, half_life) for h in histories]
    if mode == "item_sum":
        for b, (h, w) in enumerate(recent):
            if len(h):
                out[b] = w @ rows.rows(h) if rows is not None else (w @ iv[h]) @ iv.T
        return out
    for lo in range(0, len(recent), chunk):
        part = recent[lo : lo + chunk]
        width = max((len(h) for h, _ in part), default=0)
        if width == 0:
            continue
        idx = np.zeros((len(part), width), np.int64)
        wt = np.zeros((len(part), width), np.float32)
        real = np.zeros((len(part), width), bool)
        for r, (h, w) in enumerate(part):
            idx[r, : len(h)], wt[r, : len(h)], real[r, : len(h)] = h, w, True
        flat = rows.rows(idx.ravel()) if rows is not None else iv[idx].reshape(-1, iv.shape[1]) @ iv.T
        sims = flat.reshape(len(part), width, len(iv)) * wt[:, :, None]
        sims[~real] = -np.inf
        best = sims.max(1)
        out[lo : lo + len(part)] = np.where(np.isfinite(best), best, 0.0)
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
