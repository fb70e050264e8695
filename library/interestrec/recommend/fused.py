"""The fused recommender (library code, no Ray).

``score(u, i) = w_llm · max_m cos(interest_m(u), v_i) + w_graph · (g_u · g_i) + w_pop · pop_c(u)(i)``

- ``interest_m(u)``: the user's interest vectors (multi-interest, from the encode stage) — or their pooled
  vector when they have none; ``v_i``: the item's LLM vector;
- ``g_u · g_i``: GraphSAGE embeddings (when the graph stage ran);
- ``pop_c(u)``: recency-decayed item popularity inside the user's cluster, normalised to ``[0, 1]``.

Each component is standardised per user before weighting; weights are tuned on the validation split.
Every recommendation carries an explanation: the interest (and cluster) it serves and the history item
nearest to it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from interestrec.evaluate.base import Interactions, Recommender, register


def _z(x: np.ndarray) -> np.ndarray:
    mu = x.mean(1, keepdims=True)
    sd = x.std(1, keepdims=True)
    return (x - mu) / np.where(sd > 0, sd, 1.0)


@dataclass
class FusedModel:
    """Arrays behind the fused score (index space of ``item_ids``).

    Shapes:
        item_vecs: ``(n_items, d)``; user_interests[u]: ``(m_u, d)``; graph_users/graph_items: ``(n, g)``;
        cluster_pop: ``(k, n_items)``; user_cluster: ``(n_users,)``.
    """

    item_ids: np.ndarray
    item_vecs: np.ndarray
    user_interests: list[np.ndarray]
    user_cluster: np.ndarray
    cluster_pop: np.ndarray
    graph_users: np.ndarray | None = None
    graph_items: np.ndarray | None = None
    weights: tuple[float, float, float] = (1.0, 1.0, 1.0)
    history: list[np.ndarray] = field(default_factory=list)

    def components(self, users: np.ndarray, interests: list[np.ndarray] | None = None,
                   clusters: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
        """Raw component scores for ``users`` (or for given interests/clusters of unknown users)."""
        its = interests if interests is not None else [self.user_interests[u] for u in users]
        llm = np.stack([(m @ self.item_vecs.T).max(0) if len(m) else np.zeros(len(self.item_ids), np.float32) for m in its])
        cl = clusters if clusters is not None else self.user_cluster[users]
        pop = self.cluster_pop[np.maximum(cl, 0)]
        graph = None
        if self.graph_users is not None and interests is None:
            graph = self.graph_users[users] @ self.graph_items.T
        return llm, graph, pop

    def score(self, users: np.ndarray, interests: list[np.ndarray] | None = None, clusters: np.ndarray | None = None) -> np.ndarray:
        """Fused scores. Shapes: returns ``(len(users), n_items)`` float32."""
        llm, graph, pop = self.components(users, interests, clusters)
        s = self.weights[0] * _z(llm) + self.weights[2] * _z(pop)
        if graph is not None:
            s = s + self.weights[1] * _z(graph)
        return s.astype(np.float32)


def cluster_popularity(users: np.ndarray, items: np.ndarray, times: np.ndarray, user_cluster: np.ndarray, k: int,
                       n_items: int, half_life_days: float = 180.0) -> np.ndarray:
    """Recency-decayed item popularity per cluster, each row scaled to max 1.

    Shapes:
        users/items/times: ``(m,)`` index space; user_cluster: ``(n_users,)``; returns ``(k, n_items)``.
    """
    now = times.max() if len(times) else 0
    w = np.power(0.5, (now - times) / (half_life_days * 86400.0))
    pop = np.zeros((max(k, 1), n_items), np.float64)
    cl = user_cluster[users]
    ok = cl >= 0
    np.add.at(pop, (cl[ok], items[ok]), w[ok])
    return (pop / np.maximum(pop.max(1, keepdims=True), 1e-12)).astype(np.float32)


def build_fused(data: Interactions, artifacts_dir: str, half_life_days: float = 180.0) -> FusedModel:
    """Assemble the fused model's arrays for ``data``'s users and items from pipeline artifacts."""
    from interestrec import artifacts
    from interestrec.encode.interests import user_interests
    from interestrec.encode.pooling import decay
    from interestrec.evaluate.models.llm import load_item_vectors

    item_vecs = load_item_vectors(artifacts_dir, data.item_ids)
    # interests from this phase's own history (so the test phase includes the validation item)
    order = np.lexsort((data.seq_time, data.seq_user))
    su, si, st = data.seq_user[order], data.seq_item[order], data.seq_time[order]
    bounds = np.searchsorted(su, np.arange(data.n_users + 1))
    interests, history = [], []
    for u in range(data.n_users):
        sl = slice(bounds[u], bounds[u + 1])
        items, times = si[sl], st[sl]
        history.append(items)
        w = decay(times, times.max() if len(times) else 0, half_life_days)
        its = user_interests(data.item_ids[items], item_vecs[items], w, 4)
        interests.append(np.stack([i.vector for i in its]) if its else np.zeros((0, item_vecs.shape[1]), np.float32))
    assign_path = artifacts.join(artifacts_dir, "cluster", "assignments.parquet")
    user_cluster = np.full(data.n_users, -1, np.int64)
    if artifacts.exists(assign_path):
        a = artifacts.read_parquet(assign_path).to_pandas()
        pos = np.searchsorted(data.user_ids, a.user_id.to_numpy())
        ok = (pos < data.n_users) & (data.user_ids[np.minimum(pos, data.n_users - 1)] == a.user_id.to_numpy())
        user_cluster[pos[ok]] = a.cluster.to_numpy()[ok]
    k = int(user_cluster.max()) + 1
    pop = cluster_popularity(su, si, st, user_cluster, k, data.n_items, half_life_days)
    gu = gi = None
    gpath = artifacts.join(artifacts_dir, "graph", "items.parquet")
    if artifacts.exists(gpath):
        gi_t = artifacts.read_parquet(gpath)
        gu_t = artifacts.read_parquet(artifacts.join(artifacts_dir, "graph", "users.parquet"))
        gi = np.zeros((data.n_items, gi_t["vector"].type.list_size), np.float32)
        gi[np.searchsorted(data.item_ids, gi_t["item_id"].to_numpy())] = artifacts.arrow_to_vectors(gi_t["vector"])
        gu = np.zeros((data.n_users, gi.shape[1]), np.float32)
        upos = np.searchsorted(data.user_ids, gu_t["user_id"].to_numpy())
        gu[upos] = artifacts.arrow_to_vectors(gu_t["vector"])
    return FusedModel(data.item_ids, item_vecs, interests, user_cluster, pop, gu, gi, history=history)


@register
class Fused(Recommender):
    """The fused recommender as a row of the evaluation table (weights tuned on validation)."""

    name = "fused"
    baseline = False
    grid = [{"weights": w} for w in ((1.0, 0.0, 1.0), (0.5, 0.0, 1.0), (0.25, 0.0, 1.0), (0.5, 0.5, 1.0), (0.25, 1.0, 1.0), (0.0, 1.0, 1.0))]

    def fit(self, data: Interactions) -> Fused:
        if data.artifacts is None:
            raise FileNotFoundError("no pipeline artifacts directory")
        self.model = build_fused(data, data.artifacts)
        self.model.weights = tuple(self.params.get("weights", (0.5, 0.5, 1.0)))
        return self

    def score(self, users: np.ndarray) -> np.ndarray:
        return self.model.score(users)
