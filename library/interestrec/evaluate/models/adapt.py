"""LLM-only rows of the evaluation table: item-level, recency-weighted similarity to the last history items.

``score(u, j) = agg_l w_l · cos(v_{h_l(u)}, v_j)`` over the user's last ``last`` items ``h_l`` (newest
first, ``l = 0, 1, ...``) with ``w_l = 0.5^(l / half_life)``; ``agg`` is ``sum`` or ``max`` (item-level
scoring as in PinnerSage and Harte et al., RecSys'23, rather than one mean user vector). ``last``,
``half_life`` and ``agg`` are tuned on validation through each row's ``grid``.

Vectors (``DIR/adapt/``, written by the ``adapt`` stage from leak-free item text, every catalog item
included, so items without any training interaction are scored by content alone):

- ``llm_frozen``: the packaged MiniLM, frozen;
- ``llm_adapted``: the transformer adapted on the train split (objective ``contrastive`` / ``both``);
- ``llm_projection``: the projection MLP over the frozen vectors (objective ``projection`` / ``both``).

The adaptation learns from the valid phase's training events (the train split) only, and that one model
serves both phases: the test phase could have learnt from train + valid too, so using less data than
allowed is not peeking. Histories come from each phase's own training interactions (``Interactions``).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from interestrec import layout
from interestrec.evaluate.base import Interactions, Recommender, register

GRID = [{"last": n, "half_life": h, "agg": a} for a in ("sum", "max") for n in (5, 20, 50) for h in (2.0, 10.0, 1e6)]
SIMILARITY_CACHE_MAX_ITEMS = 20_000  # above this, similarities are computed per scored chunk (n_items² too big)


def last_items(data: Interactions, last: int) -> np.ndarray:
    """Each user's last ``last`` training items, newest first, ``-1`` padded.

    Shapes:
        returns ``(n_users, last)`` int64.
    """
    from interestrec.data.split import steps_from_end

    out = np.full((data.n_users, last), -1, np.int64)
    if len(data.seq_user):
        steps = steps_from_end(data.seq_user, data.seq_time, data.seq_item)
        keep = steps < last
        out[data.seq_user[keep], steps[keep]] = data.seq_item[keep]
    return out


def load_vectors(artifacts_dir: str, name: str, item_ids: np.ndarray) -> np.ndarray:
    """``DIR/adapt/<name>`` vectors aligned with ``item_ids`` (zeros for items without one).

    Shapes:
        returns ``(len(item_ids), d)`` float32.
    """
    from interestrec import artifacts
    from interestrec.ids import align_table

    path = artifacts.join(artifacts_dir, layout.ADAPT, name)
    if not artifacts.exists(path):
        raise FileNotFoundError(f"{path} (run the adapt stage with an objective that writes it)")
    t = artifacts.read_parquet(path)
    return align_table(t, item_ids)


class Similarities:
    """Item–item cosine rows of one vector file, computed once (the grid refits the row many times)."""

    def __init__(self) -> None:
        self.key: tuple | None = None
        self.vectors: np.ndarray | None = None
        self.full: np.ndarray | None = None

    def load(self, artifacts_dir: str, name: str, item_ids: np.ndarray) -> None:
        """Load (or keep) the vectors of ``name`` for ``item_ids``; the full matrix when small enough."""
        key = (artifacts_dir, name, len(item_ids), int(item_ids.sum()) if len(item_ids) else 0)
        if key == self.key:
            return
        self.vectors = load_vectors(artifacts_dir, name, item_ids)
        self.full = self.vectors @ self.vectors.T if len(item_ids) <= SIMILARITY_CACHE_MAX_ITEMS else None
        self.key = key

    def rows(self, items: np.ndarray) -> np.ndarray:
        """Cosine of ``items`` with every item. Shapes: items ``(m,)``; returns ``(m, n_items)``."""
        return self.full[items] if self.full is not None else self.vectors[items] @ self.vectors.T


def item_level_scores(hist: np.ndarray, weights: np.ndarray, sims: Similarities, agg: str) -> np.ndarray:
    """Fast path: one similarity gather per history position, vectorised over users.

    Shapes:
        hist, weights: ``(b, L)`` (``hist = -1`` padding); returns ``(b, n_items)`` float32 (0 without history).
    """
    n_items = sims.vectors.shape[0]
    out = np.zeros((len(hist), n_items), np.float32) if agg == "sum" else np.full((len(hist), n_items), -np.inf, np.float32)
    for col in range(hist.shape[1]):
        has = hist[:, col] >= 0
        if not has.any():
            break
        s = weights[has, col, None] * sims.rows(hist[has, col])
        out[has] = out[has] + s if agg == "sum" else np.maximum(out[has], s)
    out[~(hist[:, 0] >= 0)] = 0.0
    return out


def item_level_scores_reference(hist: np.ndarray, weights: np.ndarray, vectors: np.ndarray, agg: str) -> np.ndarray:
    """Obvious per-user reference of :func:`item_level_scores` (tests compare them)."""
    out = np.zeros((len(hist), vectors.shape[0]), np.float32)
    for r in range(len(hist)):
        terms = [weights[r, c] * (vectors @ vectors[h]) for c, h in enumerate(hist[r]) if h >= 0]
        if terms:
            out[r] = np.sum(terms, axis=0) if agg == "sum" else np.max(terms, axis=0)
    return out


class ItemLevelLLM(Recommender):
    """Base of the LLM-only rows: subclasses name the vector file."""

    baseline = False
    grid = GRID
    vectors_file: ClassVar[str] = ""
    _sims: ClassVar[Similarities]

    def __init_subclass__(cls, **kw) -> None:
        super().__init_subclass__(**kw)
        cls._sims = Similarities()

    def fit(self, data: Interactions) -> ItemLevelLLM:
        if data.artifacts is None:
            raise FileNotFoundError("no pipeline artifacts directory")
        last = int(self.params.get("last", 20))
        half_life = float(self.params.get("half_life", 10.0))
        self.agg = str(self.params.get("agg", "sum"))
        if self.agg not in ("sum", "max") or last < 1 or half_life <= 0:
            raise ValueError(f"{self.name}: bad params {self.params}")
        self._sims.load(data.artifacts, self.vectors_file, data.item_ids)
        self.hist = last_items(data, last)
        self.weights = np.broadcast_to(0.5 ** (np.arange(last) / half_life), self.hist.shape).astype(np.float32)
        return self

    def score(self, users: np.ndarray) -> np.ndarray:
        return item_level_scores(self.hist[users], self.weights[users], self._sims, self.agg)


@register
class FrozenLLM(ItemLevelLLM):
    name = "llm_frozen"
    vectors_file = layout.ADAPT_ITEMS_FROZEN


@register
class AdaptedLLM(ItemLevelLLM):
    name = "llm_adapted"
    vectors_file = layout.ADAPT_ITEMS_ADAPTED


@register
class ProjectionLLM(ItemLevelLLM):
    name = "llm_projection"
    vectors_file = layout.ADAPT_ITEMS_PROJECTION
