"""The serving core (no Ray): artifacts → fused model, recommendations with explanations, users, clusters.

``serving/app.py`` wraps this in Ray Serve deployments; everything here is plain Python and testable
in-process (it is also the "without Serve" side of ``jobs/bench_serve.py``). Real-time state
(:mod:`interestrec.recommend.state`) is passed in as a :class:`~interestrec.recommend.state.UserState`.
"""

from __future__ import annotations

import time

import numpy as np

from interestrec.recommend import artifacts as ra
from interestrec.recommend.fused import DIVERSITY_MODES, FusedModel, FusedParams, build_model, top_k
from interestrec.recommend.itemitem import table_from_events
from interestrec.recommend.state import UserState, apply_events, events_vector, nearest_cluster

MAX_K = 1000


class NotFound(KeyError):
    """An unknown user, item or cluster (the HTTP layer answers 404)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "not found"


def artifact_root(path: str) -> str:
    """A pipeline output dir (``…/out``) or a published version (``…/publish/vN``); resolves ``publish/LATEST``."""
    return ra.resolve_root(path)


def _diversity(value: bool | str | None) -> str:
    if value is None or value is False:
        return "none"
    if value is True:
        return "round_robin"
    if value not in DIVERSITY_MODES:
        raise ValueError(f"diversity must be true/false or one of {DIVERSITY_MODES}, got '{value}'")
    return value


class RecommenderService:
    """Everything ``/recommend``, ``/users`` and ``/clusters`` need, loaded once from an artifact directory.

    Args:
        path: pipeline output, publish root or ``publish/vN`` (local or pyarrow URI).
        half_life_days: recency half-life for interests, popularity and fresh events.
        decay_factor: how much existing interests keep when fresh events arrive.
    """

    def __init__(self, path: str, half_life_days: float = 180.0, decay_factor: float = 0.7):
        arts = ra.load(path)
        self.arts = arts
        self.root, self.version = arts.root, arts.version
        self.user_ids, self.item_ids = arts.user_ids, arts.item_ids
        self.titles = arts.titles
        self.centroids = arts.centroids
        self.half_life, self.decay_factor = half_life_days, decay_factor
        params = FusedParams.from_params(arts.fused_params)
        table = arts.item_table
        if table is None:  # an unpublished output: fit the seq term's table here, as publish would
            table = table_from_events(arts.ev_user, arts.ev_item, len(arts.user_ids), len(arts.item_ids),
                                      params.lam, params.neighbours, item_vecs=arts.item_vecs, beta=params.table_beta)
        self.model: FusedModel = build_model(arts.item_ids, arts.item_vecs, len(arts.user_ids), arts.ev_user, arts.ev_item,
                                             arts.ev_time, arts.user_cluster, len(arts.centroids), arts.graph_users,
                                             arts.graph_items, half_life_days, params.weights,
                                             arts.user_interests, table, params.seq_half_life, params.llm_mode,
                                             params.llm_last, params.llm_half_life)
        from interestrec.recommend.clusters import cluster_profiles

        self.profiles = cluster_profiles(arts, self.model.cluster_pop)

    # ------------------------------------------------------------------ lookups
    def user_index(self, user_id: int) -> int:
        pos = int(ra.lookup(self.user_ids, np.array([user_id]))[0])
        if pos < 0:
            raise NotFound(f"unknown user {user_id}")
        return pos

    def item_indices(self, item_ids: list[int]) -> np.ndarray:
        pos = ra.lookup(self.item_ids, np.asarray(item_ids, np.int64))
        if (pos < 0).any():
            bad = [int(i) for i, p in zip(item_ids, pos) if p < 0]
            raise NotFound(f"unknown item(s) {bad[:10]}")
        return pos

    def initial_state(self, user_id: int) -> UserState:
        """A known user's state from the artifacts alone."""
        u = self.user_index(user_id)
        return UserState(self.model.user_interests[u], int(self.model.user_cluster[u]))

    def _item(self, i: int) -> dict:
        iid = int(self.item_ids[i])
        return {"item_id": iid, "title": self.titles.get(iid, "")}

    # ------------------------------------------------------------------ recommend
    def recommend(self, user_id: int, k: int = 10, exclude_seen: bool = True, diversity: bool | str = False,
                  state: UserState | None = None) -> dict:
        """Top-``k`` for a known user (with fresh-event ``state`` applied when given), each explained."""
        self._check_k(k)
        mode = _diversity(diversity)
        u = self.user_index(user_id)
        hist = self.model.history[u]
        users = np.array([u])
        if state is not None:
            hist = np.r_[hist, self.item_indices(state.history)] if state.history else hist
            scores = self.model.score(users, [state.interests], np.array([state.cluster]), [hist])[0]
            interests, cluster = state.interests, state.cluster
        else:
            scores = self.model.score(users)[0]
            interests, cluster = self.model.user_interests[u], int(self.model.user_cluster[u])
        return self._format(top_k(self.model, scores, interests, cluster, hist, k, exclude_seen, mode), cluster, user_id)

    def recommend_history(self, history: list[dict], k: int = 10, text_vector: np.ndarray | None = None,
                          diversity: bool | str = False) -> dict:
        """Top-``k`` for an unknown or cold user from a short history (+ an optionally encoded text).

        ``history``: ``[{item_id, timestamp?, event?}]``; the user is assigned to the nearest cluster.
        """
        self._check_k(k)
        mode = _diversity(diversity)
        if not history and text_vector is None:
            raise ValueError("give a non-empty history or a text")
        idx = self.item_indices([int(h["item_id"]) for h in history]) if history else np.zeros(0, np.int64)
        now = time.time()
        times = np.array([float(h.get("timestamp") or now) for h in history])
        vec = events_vector(self.model.item_vecs[idx], [h.get("event") or "view" for h in history], times, self.half_life)
        if text_vector is not None:
            text_vector = np.asarray(text_vector, np.float32).reshape(-1)
            if text_vector.shape != vec.shape:
                raise RuntimeError(f"the text encoder's dimension {text_vector.shape[0]} differs from the artifacts' "
                                   f"item vectors ({vec.shape[0]}); serve with the encode stage's model")
            vec = vec + text_vector
            vec = vec / max(float(np.linalg.norm(vec)), 1e-12)
        cluster = nearest_cluster(self.centroids, vec)
        oldest_first = idx[np.argsort(times, kind="stable")]
        scores = self.model.score(np.array([0]), [vec[None, :]], np.array([cluster]), [oldest_first])[0]
        recs = top_k(self.model, scores, vec[None, :], cluster, idx, k, True, mode)
        return self._format(recs, cluster, None)

    def _check_k(self, k: int) -> None:
        if not 1 <= int(k) <= MAX_K:
            raise ValueError(f"k must be in [1, {MAX_K}], got {k}")

    def _format(self, recs, cluster: int, user_id: int | None) -> dict:
        desc = self.profiles[cluster]["description"] if 0 <= cluster < len(self.profiles) else ""
        items = []
        for rank, r in enumerate(recs, 1):
            items.append({**self._item(r.item), "rank": rank, "score": round(r.score, 6), "explanation": {
                "interest": r.interest, "interest_similarity": round(r.interest_similarity, 4),
                "cluster": r.cluster, "cluster_description": desc,
                "nearest_history_item": self._item(r.nearest_history_item) if r.nearest_history_item is not None else None}})
        return {"user_id": user_id, "cluster": int(cluster), "version": self.version, "items": items}

    # ------------------------------------------------------------------ users, clusters
    def interests(self, user_id: int, state: UserState | None = None) -> dict:
        """A user's interests (each with its nearest item), cluster and history size."""
        u = self.user_index(user_id)
        its = state.interests if state is not None else self.model.user_interests[u]
        cluster = state.cluster if state is not None else int(self.model.user_cluster[u])
        near = np.argmax(its @ self.model.item_vecs.T, axis=1) if len(its) else []
        return {"user_id": user_id, "cluster": int(cluster),
                "interests": [{"interest": m, "nearest_item": self._item(int(j))} for m, j in enumerate(near)],
                "history_size": int(len(self.model.history[u])) + (len(state.history) if state is not None else 0),
                "fresh_events": state.events if state is not None else 0}

    def clusters(self) -> dict:
        """Every cluster's id, size and description."""
        return {"clusters": [{k: p[k] for k in ("id", "size", "description")} for p in self.profiles]}

    def cluster(self, cid: int) -> dict:
        """One cluster: size, description, top items and its dynamics lineage."""
        if not 0 <= cid < len(self.profiles):
            raise NotFound(f"unknown cluster {cid} (clusters are 0..{len(self.profiles) - 1})")
        return self.profiles[cid]

    # ------------------------------------------------------------------ real-time state
    def apply_events(self, user_id: int, events: list[dict], state: UserState | None) -> UserState:
        """The state after a known user's fresh ``events`` (validated: unknown user or item → :class:`NotFound`)."""
        base = state if state is not None else self.initial_state(user_id)
        idx = self.item_indices([int(e["item_id"]) for e in events])
        now = time.time()
        return apply_events(base, self.model.item_vecs[idx], [int(e["item_id"]) for e in events],
                            [e.get("event") or "view" for e in events], [float(e.get("timestamp") or now) for e in events],
                            self.centroids, self.decay_factor, self.half_life)
