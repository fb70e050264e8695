"""Live-catalogue items (added while serving, ``POST /items``) scored as the fused model scores a cold item
(no Ray, no I/O).

An item nobody has interacted with has, in the fused score, only what its text gives it: the ``llm`` term
(the user's interests, or recent history items, against its vector), zero ``graph`` and ``pop`` terms, and a
``seq`` term only through the published table's text fill (:mod:`interestrec.recommend.coldfill`: its column
is the cosine-weighted mean of its ``cold_neighbours`` nearest catalogue items' columns, times
``cold_alpha``). :meth:`LiveScorer.scores` computes exactly that for every live item, each term standardised
with the catalogue's own per-user mean and deviation, so live and catalogue scores rank on one scale; the
catalogue's scores are :meth:`~interestrec.recommend.fused.FusedModel.score`'s.

A live item is also an item users act on: a history (fresh events, a cold user's) names it by
:class:`LiveId`, and :func:`joint_positions` places it in the joint index space (catalogue ``0..n-1``, live
item ``j`` at ``n + j``), where its vector moves the user's interests and, for the item-level ``llm`` term,
it votes like a catalogue history item (``joint`` histories of :meth:`LiveScorer.scores`); the ``seq`` term
has no row for it and never sees it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from types import SimpleNamespace
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from interestrec.recommend.fused import FusedModel


@dataclass(frozen=True)
class LiveId:
    """A live item's id in a response: already the original (the HTTP layer writes it out unchanged)."""

    original: int | str


@dataclass(frozen=True)
class LiveItems:
    """The live catalogue in index order. Shapes: vecs ``(m, d)`` float32 unit rows."""

    ids: tuple
    titles: tuple[str, ...]
    vecs: np.ndarray


class LiveScorer:
    """Live items prepared for one :class:`FusedModel`: the joint item vectors (catalogue first, then the live
    items, for diversification and explanations) and each live item's text neighbours for the ``seq`` fill.

    Args:
        model: the served model. items: the live catalogue (vectors of the model's dimension).
    """

    def __init__(self, model: FusedModel, items: LiveItems):
        vecs = np.asarray(items.vecs, np.float32).reshape(len(items.ids), model.item_vecs.shape[1])
        self.items, self.n, self.m = items, len(model.item_ids), len(items.ids)
        self.pos = {i: j for j, i in enumerate(items.ids)}  # original id -> live index
        self.view = SimpleNamespace(item_vecs=np.vstack([model.item_vecs, vecs]).astype(np.float32))
        self.neighbours = self.weights = None
        p = model.params
        if p.cold_alpha > 0 and model.item_table is not None and self.m and self.n:
            sims = np.maximum(vecs @ model.item_vecs.T, 0.0)
            k = min(p.cold_neighbours, self.n)
            self.neighbours = np.argpartition(-sims, k - 1, axis=1)[:, :k]
            w = np.take_along_axis(sims, self.neighbours, 1)
            total = w.sum(1, keepdims=True)
            self.weights = np.where(total > 0, w / np.where(total > 0, total, 1.0), 0.0).astype(np.float32)

    def find(self, originals: Sequence) -> np.ndarray:
        """Live indices of original ids (``-1`` where not live). Shapes: returns ``(len(originals),)`` int64."""
        return np.asarray([self.pos.get(o, -1) for o in originals], np.int64)

    def item(self, j: int) -> dict:
        """Live item ``j`` as a response item (its id a :class:`LiveId`)."""
        return {"item_id": LiveId(self.items.ids[j]), "title": self.items.titles[j]}

    def scores(self, model: FusedModel, users: np.ndarray, interests: list[np.ndarray] | None = None,
               clusters: np.ndarray | None = None, histories: list[np.ndarray] | None = None,
               joint: list[np.ndarray] | None = None) -> np.ndarray:
        """Fused scores of the catalogue and then the live items (arguments as in ``FusedModel.components``).

        ``joint``: the same histories in joint positions with the live items the users acted on (oldest
        first); the item-level ``llm`` term reads them (``histories`` hold the catalogue items only).

        Shapes:
            users: ``(b,)``; histories[b], joint[b]: ``(h_b,)``; returns ``(b, n_items + m)`` float32.
        """
        from interestrec.recommend.fused import COMPONENTS

        parts = model.components(users, interests, clusters, histories)
        llm = self._joint_llm(model, joint)
        if llm is not None:
            parts = parts._replace(llm=llm[:, : self.n])
        out = np.zeros((len(users), self.n + self.m), np.float64)
        for name, w, part in zip(COMPONENTS, model.weights, parts):
            if part is None or not w:
                continue
            part = np.asarray(part, np.float64)
            mu, sd = part.mean(1, keepdims=True), part.std(1, keepdims=True)
            sd = np.where(sd > 0, sd, 1.0)
            out[:, : self.n] += w * (part - mu) / sd
            if name == "llm" and llm is not None:
                raw = llm[:, self.n :]
            else:
                raw = self._raw(name, model, users, interests, histories, part)
            out[:, self.n :] += w * (raw - mu) / sd
        return out.astype(np.float32)

    def _joint_llm(self, model: FusedModel, joint: list[np.ndarray] | None) -> np.ndarray | None:
        """The item-level ``llm`` term over the catalogue and the live items from ``joint`` histories, when
        one of them names a live item (``None`` otherwise: the catalogue histories give the same term)."""
        p = model.params
        if joint is None or p.llm_mode == "interest" or not any((np.asarray(h) >= self.n).any() for h in joint):
            return None
        from interestrec.recommend.llm_term import item_level_scores

        return item_level_scores(self.view.item_vecs, [np.asarray(h, np.int64) for h in joint], p.llm_mode,
                                 p.llm_last, p.llm_half_life).astype(np.float64)

    def _raw(self, name: str, model: FusedModel, users, interests, histories, part) -> np.ndarray:
        """One term's raw scores of the live items, as for a catalogue item without interactions."""
        vecs = self.view.item_vecs[self.n :]
        zeros = np.zeros((len(users), self.m))
        if name == "llm":
            p = model.params
            if p.llm_mode == "interest":
                from interestrec.recommend.llm_term import interest_scores

                its = interests if interests is not None else [model.user_interests[u] for u in users]
                return interest_scores(vecs, its)
            return self._item_level(model, users, histories, vecs)
        if name == "seq" and self.neighbours is not None:
            return model.params.cold_alpha * (part[:, self.neighbours] * self.weights[None]).sum(-1)
        return zeros  # graph, pop: nothing without interactions (and no fill without cold_alpha)

    def _item_level(self, model: FusedModel, users, histories, vecs: np.ndarray) -> np.ndarray:
        from interestrec.recommend.llm_term import _recent

        p = model.params
        hists = histories if histories is not None else [model.history[u] for u in users]
        out = np.zeros((len(users), self.m))
        for b, hist in enumerate(hists):
            h, w = _recent(hist, p.llm_last, p.llm_half_life)
            if len(h):
                sims = (model.item_vecs[h] @ vecs.T) * np.asarray(w)[:, None]
                out[b] = sims.max(0) if p.llm_mode == "item_max" else sims.sum(0)
        return out


def joint_vecs(model: FusedModel, live: LiveScorer | None) -> np.ndarray:
    """Item vectors in joint positions: the catalogue's, then ``live``'s. Shapes: ``(n_items + m, d)``."""
    return model.item_vecs if live is None else live.view.item_vecs


def joint_positions(catalogue_ids: np.ndarray, live: LiveScorer | None, items: Sequence,
                    strict: bool = False) -> np.ndarray:
    """Positions in the joint item space of item references: a catalogue item id (``catalogue_ids[p]``) at
    ``p``, a :class:`LiveId` at ``n + j`` for live item ``j`` of ``live``; ``-1`` for anything else
    (``strict``: :class:`~interestrec.recommend.errors.NotFound` naming it instead).

    Shapes:
        catalogue_ids: ``(n,)`` sorted int64; returns ``(len(items),)`` int64.
    """
    from interestrec.ids import lookup

    is_live = np.array([isinstance(i, LiveId) for i in items], bool)
    out = np.full(len(items), -1, np.int64)
    if (~is_live).any():
        ids = np.array([i for i, lv in zip(items, is_live) if not lv], np.int64)
        out[~is_live] = lookup(catalogue_ids, ids)
    if is_live.any() and live is not None:
        j = live.find([i.original for i, lv in zip(items, is_live) if lv])
        out[is_live] = np.where(j >= 0, len(catalogue_ids) + j, -1)
    if strict and (out < 0).any():
        from interestrec.recommend.errors import NotFound

        bad = [i.original if isinstance(i, LiveId) else int(i) for i, p in zip(items, out) if p < 0]
        raise NotFound(f"unknown item(s) {bad[:10]}")
    return out
