"""The serving core (no Ray): load published artifacts, recommend with explanations, apply fresh events.

``serving/app.py`` wraps this in Ray Serve deployments; everything here is plain Python and testable
in-process (it is also the "without Serve" side of ``jobs/bench_serve.py``).
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass

import numpy as np

from interestrec import artifacts
from interestrec.data.schema import INTERACTION_KINDS
from interestrec.encode.pooling import EVENT_WEIGHT
from interestrec.evaluate.base import Interactions
from interestrec.recommend.fused import FusedModel, build_fused


class NotFound(KeyError):
    """An unknown user, item or cluster (the HTTP layer answers 404)."""


@dataclass
class UserOverride:
    """Real-time state of a user after fresh events: interest vectors, cluster and extra history."""

    interests: np.ndarray
    cluster: int
    history: list[int]


def artifact_root(path: str) -> str:
    """A pipeline output dir (``…/out``) or a published version (``…/publish/vN``); resolves ``publish/LATEST``."""
    if artifacts.exists(artifacts.join(path, "manifest.json")):
        return path
    latest = artifacts.join(path, "publish", "LATEST")
    if artifacts.exists(latest):
        return artifacts.join(path, "publish", artifacts.read_bytes(latest).decode().strip())
    return path


class RecommenderService:
    """Everything ``/recommend``, ``/users`` and ``/clusters`` need, loaded once from artifacts."""

    def __init__(self, path: str, half_life_days: float = 180.0):
        root = artifact_root(path)
        self.root = root
        manifest = artifacts.join(root, "manifest.json")
        self.version = str(artifacts.read_json(manifest)["version"]) if artifacts.exists(manifest) else "unpublished"
        events = artifacts.read_parquet(artifacts.join(root, "ingest", "events.parquet"))
        items = artifacts.read_parquet(artifacts.join(root, "ingest", "items.parquet"))
        ev = events.select(["user_id", "item_id", "timestamp", "event"]).to_pandas()
        ev = ev[ev.event.isin(INTERACTION_KINDS)]
        user_ids = np.unique(ev.user_id.to_numpy())
        item_ids = np.unique(items["item_id"].to_numpy())
        u = np.searchsorted(user_ids, ev.user_id.to_numpy())
        i = np.searchsorted(item_ids, ev.item_id.to_numpy())
        order = np.lexsort((ev.timestamp.to_numpy(), u))
        import scipy.sparse as sp

        train = sp.csr_matrix((np.ones(len(u), np.float32), (u, i)), shape=(len(user_ids), len(item_ids)))
        data = Interactions(user_ids, item_ids, train, u[order], i[order], ev.timestamp.to_numpy()[order],
                            np.full(len(user_ids), -1), artifacts=root, phase="serve")
        self.model: FusedModel = build_fused(data, root, half_life_days)
        self.model.weights = (0.5, 0.5, 1.0)
        self.user_ids, self.item_ids = user_ids, item_ids
        self.titles = dict(zip(items["item_id"].to_pylist(), items["title"].to_pylist()))
        self.centroids = artifacts.read_npy(artifacts.join(root, "cluster", "centroids.npy"))
        cj = artifacts.join(root, "dynamics", "clusters.json")
        self.cluster_info = artifacts.read_json(cj) if artifacts.exists(cj) else {}
        lj = artifacts.join(root, "dynamics", "lineage.json")
        self.lineage = artifacts.read_json(lj) if artifacts.exists(lj) else {"windows": []}
        self.half_life = half_life_days

    # ------------------------------------------------------------------ lookups
    def user_index(self, user_id: int) -> int:
        pos = int(np.searchsorted(self.user_ids, user_id))
        if pos >= len(self.user_ids) or self.user_ids[pos] != user_id:
            raise NotFound(f"unknown user {user_id}")
        return pos

    def item_index(self, item_id: int) -> int:
        pos = int(np.searchsorted(self.item_ids, item_id))
        if pos >= len(self.item_ids) or self.item_ids[pos] != item_id:
            raise NotFound(f"unknown item {item_id}")
        return pos

    def nearest_cluster(self, vector: np.ndarray) -> int:
        c = self.centroids / np.maximum(np.linalg.norm(self.centroids, axis=1, keepdims=True), 1e-12)
        return int(np.argmax(c @ vector))

    # ------------------------------------------------------------------ recommend
    def recommend(self, user_id: int, k: int = 10, exclude_seen: bool = True, diversity: bool = False,
                  override: UserOverride | None = None) -> dict:
        """Top-k for a known user (with fresh-event state applied when given), each with an explanation."""
        u = self.user_index(user_id)
        hist = list(self.model.history[u])
        if override is not None:
            hist += [self.item_index(i) for i in override.history]
            scores = self.model.score(np.array([u]), [override.interests], np.array([override.cluster]))[0]
            interests, cluster = override.interests, override.cluster
        else:
            scores = self.model.score(np.array([u]))[0]
            interests, cluster = self.model.user_interests[u], int(self.model.user_cluster[u])
        return self._top(scores, interests, cluster, hist, k, exclude_seen, diversity, user_id=user_id)

    def recommend_history(self, history: list[dict], k: int = 10, text_vector: np.ndarray | None = None,
                          diversity: bool = False) -> dict:
        """Top-k for an unknown/cold user from a short history (+ an optional encoded text)."""
        idx = [self.item_index(int(h["item_id"])) for h in history]
        vec = self.history_vector(history, idx)
        if text_vector is not None:
            vec = vec + np.asarray(text_vector, np.float32)
        vec = vec / max(float(np.linalg.norm(vec)), 1e-12)
        cluster = self.nearest_cluster(vec)
        scores = self.model.score(np.array([0]), [vec[None, :]], np.array([cluster]))[0]
        return self._top(scores, vec[None, :], cluster, idx, k, True, diversity, user_id=None)

    def history_vector(self, history: list[dict], idx: list[int]) -> np.ndarray:
        """Recency-decayed, event-weighted mean of the history's item vectors (unnormalised)."""
        if not idx:
            return np.zeros(self.model.item_vecs.shape[1], np.float32)
        ts = np.array([float(h.get("timestamp") or time.time()) for h in history])
        w = np.array([EVENT_WEIGHT.get(h.get("event", "view"), 0.5) for h in history]) * np.power(
            0.5, (ts.max() - ts) / (self.half_life * 86400.0))
        return (w[:, None] * self.model.item_vecs[idx]).sum(0).astype(np.float32)

    def _top(self, scores, interests, cluster, hist, k, exclude_seen, diversity, user_id) -> dict:
        scores = scores.copy()
        if exclude_seen and hist:
            scores[np.asarray(hist)] = -np.inf
        k = min(k, len(scores))
        cand = np.argpartition(-scores, min(k * 4, len(scores) - 1))[: k * 4]
        cand = cand[np.argsort(-scores[cand], kind="stable")]
        cand = cand[np.isfinite(scores[cand])]
        iv = self.model.item_vecs
        which = np.argmax(interests @ iv[cand].T, axis=0) if len(interests) else np.zeros(len(cand), int)
        if diversity and len(interests) > 1:  # round-robin across the interests the candidates serve
            buckets = [list(cand[which == m]) for m in range(len(interests))]
            picked = []
            while len(picked) < k and any(buckets):
                for b in buckets:
                    if b and len(picked) < k:
                        picked.append(b.pop(0))
            top = np.array(picked, dtype=np.int64)
            which = np.argmax(interests @ iv[top].T, axis=0)
        else:
            top, which = cand[:k], which[:k]
        hist_arr = np.asarray(hist[-200:], dtype=np.int64)
        out = []
        for rank, (i, m) in enumerate(zip(top, which)):
            near = None
            if len(hist_arr):
                j = hist_arr[int(np.argmax(iv[hist_arr] @ iv[i]))]
                near = {"item_id": int(self.item_ids[j]), "title": self.titles.get(int(self.item_ids[j]), "")}
            desc = self.cluster_info.get(str(cluster), {}).get("description", "")
            out.append({"rank": rank + 1, "item_id": int(self.item_ids[i]), "title": self.titles.get(int(self.item_ids[i]), ""),
                        "score": float(scores[i]),
                        "explanation": {"interest": int(m), "cluster": int(cluster), "cluster_description": desc,
                                        "nearest_history_item": near}})
        return {"user_id": user_id, "cluster": int(cluster), "version": self.version, "items": out}

    # ------------------------------------------------------------------ users, clusters
    def interests(self, user_id: int, override: UserOverride | None = None) -> dict:
        u = self.user_index(user_id)
        its = override.interests if override is not None else self.model.user_interests[u]
        cluster = override.cluster if override is not None else int(self.model.user_cluster[u])
        out = []
        for m, v in enumerate(its):
            j = int(np.argmax(self.model.item_vecs @ v))
            out.append({"interest": m, "nearest_item": {"item_id": int(self.item_ids[j]), "title": self.titles.get(int(self.item_ids[j]), "")}})
        return {"user_id": user_id, "cluster": cluster, "interests": out, "history_size": int(len(self.model.history[u]))}

    def clusters(self) -> dict:
        sizes = np.bincount(self.model.user_cluster[self.model.user_cluster >= 0], minlength=len(self.centroids))
        return {"clusters": [{"id": c, "size": int(sizes[c]), "description": self.cluster_info.get(str(c), {}).get("description", "")}
                             for c in range(len(self.centroids))]}

    def cluster(self, cid: int) -> dict:
        if not 0 <= cid < len(self.centroids):
            raise NotFound(f"unknown cluster {cid}")
        info = self.cluster_info.get(str(cid), {})
        top = np.argsort(-self.model.cluster_pop[cid])[:10]
        lineage = [{"window": w["window"], **next((c for c in w["clusters"] if c["id"] == cid), {})} for w in self.lineage.get("windows", [])]
        return {"id": cid, "size": int((self.model.user_cluster == cid).sum()), "description": info.get("description", ""),
                "top_items": [{"item_id": int(self.item_ids[i]), "title": self.titles.get(int(self.item_ids[i]), "")} for i in top],
                "lineage": [x for x in lineage if "id" in x]}

    # ------------------------------------------------------------------ real-time state
    def apply_events(self, user_id: int, events: list[dict], current: UserOverride | None, decay_factor: float = 0.7) -> UserOverride:
        """New state after ``events``: interests decayed by ``decay_factor`` plus the events' vector, re-clustered."""
        u = self.user_index(user_id)
        idx = [self.item_index(int(e["item_id"])) for e in events]
        base = current.interests if current is not None else self.model.user_interests[u]
        fresh = self.history_vector(events, idx)
        fresh = fresh / max(float(np.linalg.norm(fresh)), 1e-12)
        its = np.vstack([decay_factor * base, fresh[None, :]]) if len(base) else fresh[None, :]
        its = its / np.maximum(np.linalg.norm(its, axis=1, keepdims=True), 1e-12)
        return UserOverride(its.astype(np.float32), self.nearest_cluster(fresh), (current.history if current else []) + [int(e["item_id"]) for e in events])


class EventLog:
    """Append-only JSON-lines event log; each append is flushed and fsynced before it returns."""

    def __init__(self, path: str):
        import os

        self.path = path
        os.makedirs(os.path.dirname(path), exist_ok=True)
        self._lock = threading.Lock()

    def append(self, user_id: int, events: list[dict]) -> None:
        import os

        line = json.dumps({"user_id": user_id, "events": events, "logged_at": time.time()}) + "\n"
        with self._lock, open(self.path, "a", encoding="utf-8") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())

    def replay(self) -> list[tuple[int, list[dict]]]:
        import os

        if not os.path.exists(self.path):
            return []
        out = []
        with open(self.path, encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    rec = json.loads(line)
                    out.append((int(rec["user_id"]), rec["events"]))
        return out
