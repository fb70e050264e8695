"""Top-k for one user: seen-item filter, optional diversification across interests (round-robin or MMR)
and an explanation per recommended item."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from interestrec.recommend.fused import FusedModel

DIVERSITY_MODES = ("none", "round_robin", "mmr")


def diversify(cand: np.ndarray, scores: np.ndarray, item_vecs: np.ndarray, interests: np.ndarray, k: int,
              mode: str = "round_robin", lam: float = 0.7) -> np.ndarray:
    """Pick ``k`` of the score-ordered candidates spreading them over the user's interests.

    ``round_robin``: bucket candidates by the interest they serve best, take the best of each bucket in
    turn (interests in their stored order, most important first). ``mmr``: maximal marginal relevance,
    ``lam · relevance − (1 − lam) · max cos to the picked items`` with relevance scaled to [0, 1].

    Shapes:
        cand: ``(c,)`` item indices, best first; scores: ``(n_items,)``; item_vecs: ``(n_items, d)``;
        interests: ``(m, d)``; returns ``(min(k, c),)``.
    """
    if mode not in DIVERSITY_MODES:
        raise ValueError(f"unknown diversity mode '{mode}'; expected one of {DIVERSITY_MODES}")
    k = min(k, len(cand))
    if mode == "none" or k == 0:
        return cand[:k]
    if mode == "round_robin":
        if len(interests) < 2:
            return cand[:k]
        which = np.argmax(interests @ item_vecs[cand].T, axis=0)
        buckets = [list(cand[which == m]) for m in range(len(interests))]
        picked: list[int] = []
        while len(picked) < k:
            for b in buckets:
                if b and len(picked) < k:
                    picked.append(b.pop(0))
        return np.asarray(picked, np.int64)
    rel = scores[cand].astype(np.float64)
    rel = (rel - rel.min()) / max(rel.max() - rel.min(), 1e-12)
    v = item_vecs[cand]
    sim = v @ v.T
    chosen = [0]
    max_sim = sim[0].copy()
    left = np.ones(len(cand), bool)
    left[0] = False
    while len(chosen) < k:
        gain = np.where(left, lam * rel - (1 - lam) * max_sim, -np.inf)
        j = int(np.argmax(gain))
        chosen.append(j)
        left[j] = False
        max_sim = np.maximum(max_sim, sim[j])
    return cand[np.asarray(chosen)]


def best(scores: np.ndarray, c: int) -> np.ndarray:
    """The ``c`` best items by score, best first, ties by item index.

    Everything above the ``c``-th largest score is in; of the items tied with it, those of smallest index
    (``np.partition`` finds the value: on a catalogue-sized row it takes half of ``np.argpartition``'s time).

    Shapes:
        scores: ``(n,)``; returns ``(min(c, n),)`` item indices.
    """
    n = len(scores)
    if c <= 0:
        return np.zeros(0, np.int64)
    cand = np.arange(n) if c >= n else np.flatnonzero(scores >= np.partition(scores, n - c)[n - c])
    return cand[np.lexsort((cand, -scores[cand]))][:c]


def best_reference(scores: np.ndarray, c: int) -> np.ndarray:
    """:func:`best` by a full stable sort (the reference)."""
    return np.asarray(sorted(range(len(scores)), key=lambda i: (-scores[i], i))[: max(c, 0)], np.int64)


@dataclass(frozen=True)
class Recommendation:
    """One recommended item with its explanation (index space; the service maps ids and titles)."""

    item: int
    score: float
    interest: int  # index of the interest it serves best
    interest_similarity: float
    cluster: int
    nearest_history_item: int | None  # item index of the most similar history item
    components: dict = field(default_factory=dict)


def top_k(model: FusedModel, scores: np.ndarray, interests: np.ndarray, cluster: int, history: np.ndarray, k: int,
          exclude_seen: bool = True, diversity: str = "none", pool: int = 4, components: dict | None = None,
          max_candidates: int | None = None) -> list[Recommendation]:
    """Top-``k`` items for one user with explanations.

    Args:
        scores: the user's fused scores. interests: the user's interest vectors. history: item indices
            the user has seen (filtered when ``exclude_seen``). diversity: see :func:`diversify` (or
            ``"none"``); the diversified list is drawn from the best ``pool · k`` items, at most
            ``max(k, max_candidates)`` of them when ``max_candidates`` is given (diversification never runs
            over the whole catalogue).
        components: optional per-component score rows to report per item (name → ``(n_items,)``).

    Shapes:
        scores: ``(n_items,)``; interests: ``(m, d)``; history: ``(h,)``.
    """
    scores = np.array(scores, dtype=np.float64)
    history = np.asarray(history, np.int64)
    if exclude_seen and len(history):
        scores[history] = -np.inf
    n_ok = int(np.isfinite(scores).sum())
    k = min(k, n_ok)
    if k <= 0:
        return []
    c = min(k * (pool if diversity != "none" else 1), n_ok)
    if max_candidates is not None:
        c = min(c, max(k, int(max_candidates)))
    cand = best(scores, c)
    top = diversify(cand, scores, model.item_vecs, interests, k, diversity)
    iv = model.item_vecs
    sims = interests @ iv[top].T if len(interests) else np.zeros((1, len(top)))
    recent = history[-200:]
    near = recent[np.argmax(iv[recent] @ iv[top].T, axis=0)].tolist() if len(recent) else [None] * len(top)
    best_interest = np.argmax(sims, axis=0)
    cols = (top.tolist(), scores[top].tolist(), best_interest.tolist(),
            sims[best_interest, np.arange(len(top))].tolist(), near)
    return [Recommendation(i, s, m, sim, int(cluster), h, {name: float(row[i]) for name, row in (components or {}).items()})
            for i, s, m, sim, h in zip(*cols)]
