"""The serving core (no Ray): artifacts → fused model, recommendations with explanations, users, clusters.

``interestrec.serving.app`` wraps this in Ray Serve deployments; everything here is plain Python and
testable in-process (it is also the "without Serve" side of ``jobs/bench_serve.py``). Real-time state
(:mod:`interestrec.recommend.state`) is passed in as a :class:`~interestrec.recommend.state.UserState`,
built from a user's stored fresh events by :meth:`RecommenderService.state_from_events`.

Errors are typed: :class:`NotFound` (unknown user, item or cluster: the one unknown-id error,
:class:`interestrec.errors.UnknownIdError`) and :class:`InvalidRequest` (a value
the model cannot use); the HTTP layer maps each to one status code.
"""

from __future__ import annotations

import time

import numpy as np

from interestrec.encode.config import HALF_LIFE_DAYS
from interestrec.ids import lookup
from interestrec.recommend import artifacts as ra
from interestrec.recommend.errors import InvalidRequest, NotFound
from interestrec.recommend.fused import FusedInputs, FusedModel, FusedParams, build_model
from interestrec.recommend.itemitem import fused_table
from interestrec.recommend.live import joint_positions, joint_vecs
from interestrec.recommend.state import UserState, apply_events, events_vector, fold_events, nearest_cluster
from interestrec.recommend.topk import DIVERSITY_MODES, top_k

MAX_K = 1000


def artifact_root(path: str) -> str:
    """A pipeline output dir (``…/out``) or a published version (``…/publish/vN``); resolves ``publish/LATEST``."""
    return ra.resolve_root(path)


def _diversity(value: bool | str | None) -> str:
    if value is None or value is False:
        return "none"
    if value is True:
        return "round_robin"
    if value not in DIVERSITY_MODES:
        raise InvalidRequest(f"diversity must be true/false or one of {DIVERSITY_MODES}, got '{value}'")
    return value


class RecommenderService:
    """Everything ``/recommend``, ``/users`` and ``/clusters`` need, loaded once from an artifact directory.

    Args:
        path: pipeline output, publish root or ``publish/vN`` (local or pyarrow URI).
        half_life_days: recency half-life for interests, popularity and fresh events.
        decay_factor: how much existing interests keep when fresh events arrive.
        candidates: diversification re-ranks at most this many of the best items (never the catalogue).
        open_depth: for a caller who may not see the user's history (``explain_history=False``), the deepest
            rank of the user's unseen items an answer may come from, excluded items included (``None``: no cap).
    """

    def __init__(self, path: str, half_life_days: float = HALF_LIFE_DAYS, decay_factor: float = 0.7,
                 candidates: int = 200, open_depth: int | None = None, sim_cache_mb: float = 0.0):
        arts = ra.load(path)
        self.arts = arts
        self.root, self.version = arts.root, arts.version
        self.user_ids, self.item_ids = arts.user_ids, arts.item_ids
        self.titles = arts.titles
        self.centroids = arts.centroids
        self.half_life, self.decay_factor = half_life_days, decay_factor
        self.candidates, self.open_depth = candidates, open_depth
        self.live = None  # a LiveScorer once set_live gives live-catalogue items
        params = FusedParams.from_params(arts.fused_params)
        table = arts.item_table
        if table is None:  # an unpublished output: fit the seq term's table here, as publish would
            table = fused_table(arts.ev_user, arts.ev_item, len(arts.user_ids), len(arts.item_ids), arts.item_vecs, params)
        inputs = FusedInputs(arts.item_ids, arts.item_vecs, len(arts.user_ids), arts.ev_user, arts.ev_item,
                             arts.ev_time, arts.user_cluster, len(arts.centroids), arts.graph_users, arts.graph_items,
                             interests=arts.user_interests, item_table=table, half_life_days=half_life_days)
        self.model: FusedModel = build_model(inputs, params)
        if sim_cache_mb > 0 and params.llm_mode != "interest":  # the item-level term's rows, cached per replica
            from interestrec.recommend.llm_term import SimilarityRows, recent_items

            self.model.sim_rows = SimilarityRows.for_budget(self.model.item_vecs, sim_cache_mb)
            self.model.sim_rows.warm(recent_items(self.model.history, params.llm_last))
        from interestrec.recommend.clusters import cluster_profiles

        self.profiles = cluster_profiles(arts, self.model.cluster_pop)

    # ------------------------------------------------------------------ lookups
    def user_index(self, user_id: int) -> int:
        pos = int(lookup(self.user_ids, np.array([user_id]))[0])
        if pos < 0:
            raise NotFound(f"unknown user {user_id}")
        return pos

    def item_indices(self, item_ids: list[int]) -> np.ndarray:
        pos = lookup(self.item_ids, np.asarray(item_ids, np.int64))
        if (pos < 0).any():
            bad = [int(i) for i, p in zip(item_ids, pos) if p < 0]
            raise NotFound(f"unknown item(s) {bad[:10]}")
        return pos

    def initial_state(self, user_id: int) -> UserState:
        """A known user's state from the artifacts alone."""
        u = self.user_index(user_id)
        return UserState(self.model.user_interests[u], int(self.model.user_cluster[u]))

    def set_live(self, items) -> None:
        """Serve these live-catalogue items (:class:`~interestrec.recommend.live.LiveItems`; ``None`` or
        empty: none) beside the catalogue, scored as cold items; one assignment, so a request sees all or none."""
        from interestrec.recommend.live import LiveScorer

        self.live = LiveScorer(self.model, items) if items is not None and len(items.ids) else None

    def _score(self, live, users: np.ndarray, *state, joint: list[np.ndarray] | None = None) -> np.ndarray:
        """Fused scores, the ``live`` items' after the catalogue's (arguments as ``LiveScorer.scores``)."""
        return self.model.score(users, *state) if live is None else live.scores(self.model, users, *state, joint=joint)

    def _item(self, i: int, live=None) -> dict:
        if i >= len(self.item_ids):  # a live item (of the snapshot the request was scored with)
            return live.item(i - len(self.item_ids))
        iid = int(self.item_ids[i])
        return {"item_id": iid, "title": self.titles.get(iid, "")}

    # ------------------------------------------------------------------ recommend
    def _exclude(self, scores: np.ndarray, exclude_items: list | None, live=None) -> np.ndarray:
        """``scores`` without the catalogue ids and :class:`LiveId` s of ``exclude_items`` (unknown ones ignored)."""
        if exclude_items:
            pos = joint_positions(self.item_ids, live, exclude_items)
            scores = np.array(scores, copy=True)
            scores[pos[pos >= 0]] = -np.inf  # unknown ids cannot be recommended anyway
        return scores

    def recommend(self, user_id: int, k: int = 10, exclude_seen: bool = True, diversity: bool | str = False,
                  state: UserState | None = None, exclude_items: list[int] | None = None,
                  explain_history: bool = True) -> dict:
        """Top-``k`` for a known user (with fresh-event ``state`` applied when given), each explained.

        ``explain_history=False`` leaves out ``nearest_history_item`` (the user's own history) and keeps the
        answer within the first ``open_depth`` ranks (``exclude_items`` counted).
        """
        return self.recommend_many([user_id], k, exclude_seen, diversity, [state], [exclude_items],
                                   explain_history)[0]

    def recommend_many(self, user_ids: list[int], k: int = 10, exclude_seen: bool = True, diversity: bool | str = False,
                       states: list[UserState | None] | None = None, exclude_items: list[list[int] | None] | None = None,
                       explain_history: bool | list[bool] = True) -> list[dict]:
        """:meth:`recommend` for several known users, scored together (one matrix product per group:
        users without fresh state, users with it). Unknown users raise :class:`NotFound`."""
        self._check_k(k)
        mode = _diversity(diversity)
        n = len(user_ids)
        states = states or [None] * n
        exclude_items = exclude_items or [None] * n
        explain = explain_history if isinstance(explain_history, list) else [explain_history] * n
        us = np.array([self.user_index(u) for u in user_ids], np.int64)
        live = self.live
        scores = np.zeros((n, len(self.item_ids) + (live.m if live is not None else 0)), np.float32)
        plain = [j for j in range(n) if states[j] is None]
        fresh = [j for j in range(n) if states[j] is not None]
        hists = [self.model.history[u] for u in us]  # catalogue positions (the seq term's rows)
        seen = list(hists)  # joint positions, live items the user acted on included
        for j in fresh:
            if states[j].history:
                pos = joint_positions(self.item_ids, live, states[j].history)
                seen[j] = np.r_[hists[j], pos[pos >= 0]]
                hists[j] = np.r_[hists[j], pos[(pos >= 0) & (pos < len(self.item_ids))]]
        if plain:
            scores[plain] = self._score(live, us[plain])
        if fresh:
            scores[fresh] = self._score(live, us[fresh], [states[j].interests for j in fresh],
                                        np.array([states[j].cluster for j in fresh]), [hists[j] for j in fresh],
                                        joint=[seen[j] for j in fresh])
        out = []
        for j, uid in enumerate(user_ids):
            st = states[j]
            interests = st.interests if st is not None else self.model.user_interests[us[j]]
            cluster = st.cluster if st is not None else int(self.model.user_cluster[us[j]])
            recs = top_k(self._ranked(live), self._exclude(scores[j], exclude_items[j], live), interests, cluster, seen[j], k,
                         exclude_seen, mode, max_candidates=self._depth(k, explain[j], exclude_items[j]))
            out.append(self._format(recs, cluster, uid, explain[j], live))
        return out

    def recommend_history(self, history: list[dict], k: int = 10, text_vector: np.ndarray | None = None,
                          diversity: bool | str = False, exclude_items: list[int] | None = None) -> dict:
        """Top-``k`` for an unknown or cold user from a short history (+ an optionally encoded text).

        ``history``: ``[{item_id, timestamp?, event?, value?}]`` (a missing timestamp is now; 0 is 1970), each
        ``item_id`` a catalogue id or a :class:`LiveId`; the user is assigned to the nearest cluster.
        """
        self._check_k(k)
        mode = _diversity(diversity)
        if not history and text_vector is None:
            raise InvalidRequest("give a non-empty history or a text")
        live = self.live
        idx = joint_positions(self.item_ids, live, [h["item_id"] for h in history], strict=True)
        now = time.time()
        times = np.array([now if h.get("timestamp") is None else float(h["timestamp"]) for h in history])
        vec = events_vector(joint_vecs(self.model, live)[idx], [h.get("event") or "view" for h in history], times,
                            self.half_life, [h.get("value") for h in history])
        if text_vector is not None:
            text_vector = np.asarray(text_vector, np.float32).reshape(-1)
            self.check_text_dim(len(text_vector))
            vec = vec + text_vector
            vec = vec / max(float(np.linalg.norm(vec)), 1e-12)
        cluster = nearest_cluster(self.centroids, vec)
        oldest_first = idx[np.argsort(times, kind="stable")]
        catalogue = oldest_first[oldest_first < len(self.item_ids)]  # the seq term has no row for a live item
        scores = self._score(live, np.array([0]), [vec[None, :]], np.array([cluster]), [catalogue],
                             joint=[oldest_first])[0]
        recs = top_k(self._ranked(live), self._exclude(scores, exclude_items, live), vec[None, :], cluster, idx, k, True, mode,
                     max_candidates=self.candidates)
        return self._format(recs, cluster, None, True, live)

    @property
    def dim(self) -> int:
        """The item vectors' dimension (a text encoder must produce the same)."""
        return int(self.model.item_vecs.shape[1])

    def check_text_dim(self, dim: int) -> None:
        """Raise ``RuntimeError`` when a text encoder's dimension differs from the item vectors'."""
        if int(dim) != self.dim:
            raise RuntimeError(f"the text encoder's dimension {dim} differs from the artifacts' item vectors "
                               f"({self.dim}); serve with the encode stage's model")

    def _ranked(self, live):
        """What ``top_k`` reads item vectors from: the model, or the catalogue and the live items together."""
        return self.model if live is None else live.view

    def _depth(self, k: int, sees_history: bool, excluded: list[int] | None) -> int:
        """Candidates diversification may draw from: ``candidates``; for a caller who may not see the user's
        history, no deeper than ``open_depth`` ranks counting the excluded items (never fewer than ``k``)."""
        if sees_history or self.open_depth is None:
            return self.candidates
        return max(int(k), min(self.candidates, self.open_depth - len(excluded or [])))

    def _check_k(self, k: int) -> None:
        if not 1 <= int(k) <= MAX_K:
            raise InvalidRequest(f"k must be in [1, {MAX_K}], got {k}")

    def _format(self, recs, cluster: int, user_id: int | None, explain_history: bool = True, live=None) -> dict:
        desc = self.profiles[cluster]["description"] if 0 <= cluster < len(self.profiles) else ""
        items = []
        for rank, r in enumerate(recs, 1):
            items.append({**self._item(r.item, live), "rank": rank, "score": round(r.score, 6), "explanation": {
                "interest": r.interest, "interest_similarity": round(r.interest_similarity, 4),
                "cluster": r.cluster, "cluster_description": desc,
                "nearest_history_item": (self._item(r.nearest_history_item, live)
                                         if explain_history and r.nearest_history_item is not None else None)}})
        return {"user_id": user_id, "cluster": int(cluster), "version": self.version, "items": items}

    # ------------------------------------------------------------------ users, clusters
    def interests(self, user_id: int, state: UserState | None = None, hide_history: bool = False) -> dict:
        """:func:`interestrec.recommend.user_views.interests` of this service."""
        from interestrec.recommend.user_views import interests

        return interests(self, user_id, state, hide_history)

    def clusters(self) -> dict:
        """Every cluster's id, size and description."""
        return {"clusters": [{k: p[k] for k in ("id", "size", "description")} for p in self.profiles]}

    def cluster(self, cid: int) -> dict:
        """One cluster: size, description, top items and its dynamics lineage."""
        if not 0 <= cid < len(self.profiles):
            raise NotFound(f"unknown cluster {cid} (clusters are 0..{len(self.profiles) - 1})")
        return self.profiles[cid]

    def similar(self, user_id: int, n: int = 10, k: int = 10, state: UserState | None = None,
                min_users: int = 1) -> dict:
        """:func:`interestrec.recommend.user_views.similar` of this service."""
        from interestrec.recommend.user_views import similar

        self._check_k(k)
        return similar(self, user_id, n, k, state, min_users)

    # ------------------------------------------------------------------ real-time state
    def validate_events(self, user_id: int, events: list[dict]) -> None:
        """Raise :class:`NotFound` for an unknown user or item (a catalogue id, or a ``LiveId`` served here)."""
        self.user_index(user_id)
        joint_positions(self.item_ids, self.live, [e["item_id"] for e in events], strict=True)

    def state_from_events(self, user_id: int, events: list) -> UserState | None:
        """A known user's state after their stored fresh ``events`` (sequence order, grouped by batch; an
        ``item_id`` is a catalogue id or a ``LiveId``); ``None`` without events. Unknown items are skipped."""
        if not events:
            return None
        live = self.live  # one snapshot: positions and vectors agree
        pos = joint_positions(self.item_ids, live, [e.item_id for e in events])
        return fold_events(self.initial_state(user_id), events, pos, joint_vecs(self.model, live), self.centroids,
                           self.decay_factor, self.half_life)

    def apply_events(self, user_id: int, events: list[dict], state: UserState | None) -> UserState:
        """The state after a known user's fresh ``events`` (validated: unknown user or item → :class:`NotFound`)."""
        base = state if state is not None else self.initial_state(user_id)
        live = self.live
        idx = joint_positions(self.item_ids, live, [e["item_id"] for e in events], strict=True)
        now = time.time()
        return apply_events(base, joint_vecs(self.model, live)[idx], [e["item_id"] for e in events],
                            [e.get("event") or "view" for e in events],
                            [now if e.get("timestamp") is None else float(e["timestamp"]) for e in events],
                            self.centroids, self.decay_factor, self.half_life, values=[e.get("value") for e in events])
