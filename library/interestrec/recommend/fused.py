"""The fused recommender (library code, no Ray).

``score(u, i) = w_llm · z(max_m cos(interest_m(u), v_i)) + w_graph · z(g_u · g_i) + w_pop · z(pop_c(u)(i))
+ w_seq · z(seq(u, i))``

- ``interest_m(u)``: the user's interest vectors (PinnerSage-style, ``interestrec.encode.interests``, over
  the history the phase may learn from); ``v_i``: the item's LLM vector (encode stage);
- ``g_u · g_i``: GraphSAGE embeddings, when the graph stage ran (dropped for cold users);
- ``pop_c(u)``: recency-decayed item popularity inside the user's cluster (global popularity for
  unassigned users), each row scaled to max 1;
- ``seq(u, i)``: the sequential collaborative term, the user's history read newest first through a
  sparse item–item table (:mod:`interestrec.recommend.itemitem`); it follows fresh events and works
  for cold users' short histories too;
- ``z``: standardisation over the items, per user, so the weights compare like with like.

The weights are tuned on the validation split (the ``fused`` row of the evaluation table); serving
reads the tuned ones from the published manifest. :func:`score_reference` is the obvious per-pair
version that the vectorised :meth:`FusedModel.score` is tested against. :func:`top_k` filters seen items,
optionally diversifies across interests (round-robin or MMR) and explains every recommendation.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from interestrec.evaluate.base import Interactions, Recommender, register

DIVERSITY_MODES = ("none", "round_robin", "mmr")
COMPONENTS = ("llm", "graph", "pop", "seq")
DEFAULT_WEIGHTS = (0.25, 0.25, 0.25, 1.0)  # per COMPONENTS; the evaluation's tuned ones replace them


def as_weights(values) -> tuple[float, float, float, float]:
    """Fused weights in :data:`COMPONENTS` order; a 3-tuple (published before the ``seq`` term) gets ``seq = 0``."""
    w = tuple(float(v) for v in values)
    if len(w) == 3:
        w = (*w, 0.0)
    if len(w) != len(COMPONENTS):
        raise ValueError(f"fused weights need {len(COMPONENTS)} values {COMPONENTS}, got {len(w)}")
    return w


@dataclass(frozen=True)
class FusedParams:
    """The fused row's hyper-parameters, as tuned by the evaluation and published in the manifest.

    Attributes:
        weights: one weight per :data:`COMPONENTS` term.
        seq_half_life: history positions; the item ``k`` steps before the last weighs ``0.5^(k / this)``.
        lam / neighbours: EASE^R strength and entries kept per item of the seq term's item–item table.
        pop_half_life_days: decay of the evaluation's per-user time-aware popularity.
        table_beta: > 0 makes the seq term's table L3AE (EASE pulled towards the LLM item-text model,
            :mod:`interestrec.evaluate.models.l3ae`); 0 is EASE^R.
        llm_mode / llm_last / llm_half_life: the LLM term's form (:mod:`interestrec.recommend.llm_term`):
            ``interest`` (max over interest vectors) or item level over the last ``llm_last`` history items.
    """

    weights: tuple[float, float, float, float] = DEFAULT_WEIGHTS
    seq_half_life: float = 5.0
    lam: float = 100.0
    neighbours: int = 256
    pop_half_life_days: float = 90.0
    table_beta: float = 0.0
    llm_mode: str = "interest"
    llm_last: int = 20
    llm_half_life: float = 5.0

    def __post_init__(self) -> None:
        from interestrec.recommend.llm_term import LLM_MODES

        if self.llm_mode not in LLM_MODES:
            raise ValueError(f"fused llm_mode must be one of {LLM_MODES}, got {self.llm_mode!r}")
        if self.table_beta < 0:
            raise ValueError(f"fused table_beta must be >= 0, got {self.table_beta}")

    @classmethod
    def from_params(cls, params: dict | None) -> FusedParams:
        """From a grid point or a published ``params`` dict (missing keys take the defaults)."""
        p = dict(params or {})
        unknown = set(p) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"unknown fused params {sorted(unknown)}")
        if "weights" in p:
            p["weights"] = as_weights(p["weights"])
        return cls(**p)


def z_rows(x: np.ndarray) -> np.ndarray:
    """Per-row standardisation (constant rows become zeros). Shapes: ``(b, n)`` → ``(b, n)``."""
    mu = x.mean(1, keepdims=True)
    sd = x.std(1, keepdims=True)
    return (x - mu) / np.where(sd > 0, sd, 1.0)


@dataclass
class FusedModel:
    """Arrays behind the fused score (index space of ``item_ids``).

    Shapes:
        item_ids: ``(n_items,)``; item_vecs: ``(n_items, d)``; user_interests[u]: ``(m_u, d)``;
        user_cluster: ``(n_users,)`` (-1 = unassigned); cluster_pop: ``(k + 1, n_items)``, the last row
        global popularity; graph_users ``(n_users, g)`` / graph_items ``(n_items, g)`` or ``None``;
        history[u]: ``(h_u,)`` item indices, oldest first.
    """

    item_ids: np.ndarray
    item_vecs: np.ndarray
    user_interests: list[np.ndarray]
    user_cluster: np.ndarray
    cluster_pop: np.ndarray
    graph_users: np.ndarray | None = None
    graph_items: np.ndarray | None = None
    weights: tuple[float, float, float, float] = DEFAULT_WEIGHTS
    history: list[np.ndarray] = field(default_factory=list)
    user_pop: np.ndarray | None = None  # (n_users, n_items): popularity as of each user's own last event
    item_table: object | None = None  # sparse (n_items, n_items) item–item table of the seq term
    seq_half_life: float = FusedParams.seq_half_life  # history positions (see FusedParams)
    llm_mode: str = FusedParams.llm_mode  # the LLM term's form (see FusedParams)
    llm_last: int = FusedParams.llm_last
    llm_half_life: float = FusedParams.llm_half_life

    def pop_rows(self, clusters: np.ndarray) -> np.ndarray:
        """Popularity rows for cluster ids (``-1`` or out of range → global). Shapes: returns ``(b, n_items)``."""
        c = np.asarray(clusters, np.int64)
        k = len(self.cluster_pop) - 1
        return self.cluster_pop[np.where((c >= 0) & (c < k), c, k)]

    def components(self, users: np.ndarray, interests: list[np.ndarray] | None = None,
                   clusters: np.ndarray | None = None, histories: list[np.ndarray] | None = None
                   ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray, np.ndarray | None]:
        """Raw component scores: LLM max-cosine, GraphSAGE dot (known users only), cluster popularity,
        sequential item–item (when the model has a table).

        ``interests`` / ``clusters`` / ``histories`` (item indices, oldest first) replace the stored ones
        (fresh state or a cold user); the graph term is used only for stored users (``interests is None``).

        Shapes:
            users: ``(b,)``; returns four ``(b, n_items)`` arrays (graph and seq may be ``None``).
        """
        from interestrec.recommend.llm_term import llm_scores

        its = interests if interests is not None else [self.user_interests[u] for u in users]
        hist = histories if histories is not None else [self.history[u] for u in users] if self.history else []
        llm = llm_scores(self.llm_mode, self.item_vecs, its, hist, self.llm_last, self.llm_half_life)
        if clusters is None and self.user_pop is not None:
            pop = self.user_pop[users]
        else:
            pop = self.pop_rows(clusters if clusters is not None else self.user_cluster[users])
        graph = None
        if self.graph_users is not None and interests is None:
            graph = self.graph_users[users] @ self.graph_items.T
        seq = None
        if self.item_table is not None:
            from interestrec.recommend.itemitem import item_item_scores

            seq = item_item_scores(self.item_table, hist, self.seq_half_life)
        return llm, graph, pop, seq

    def score(self, users: np.ndarray, interests: list[np.ndarray] | None = None,
              clusters: np.ndarray | None = None, histories: list[np.ndarray] | None = None) -> np.ndarray:
        """Fused scores (arguments as in :meth:`components`). Shapes: users ``(b,)``; returns ``(b, n_items)`` float32."""
        s = None
        for w, part in zip(self.weights, self.components(users, interests, clusters, histories)):
            if part is not None and w:
                s = w * z_rows(part) if s is None else s + w * z_rows(part)
        return (s if s is not None else np.zeros((len(users), len(self.item_ids)))).astype(np.float32)


def score_reference(model: FusedModel, u: int, i: int) -> float:
    """The fused score of one (user, item) pair, written out plainly (the reference for :meth:`FusedModel.score`)."""
    n = len(model.item_ids)

    def z(values: list[float], j: int) -> float:
        mu = sum(values) / n
        sd = (sum((v - mu) ** 2 for v in values) / n) ** 0.5
        return (values[j] - mu) / sd if sd > 0 else 0.0

    its = model.user_interests[u]
    if model.llm_mode == "interest":
        llm = [max(float(np.dot(m, model.item_vecs[j])) for m in its) if len(its) else 0.0 for j in range(n)]
    else:
        from interestrec.recommend.llm_term import item_level_reference

        llm = [item_level_reference(model.item_vecs, model.history[u], j, model.llm_mode, model.llm_last,
                                    model.llm_half_life) for j in range(n)]
    c = int(model.user_cluster[u])
    row = model.cluster_pop[c if 0 <= c < len(model.cluster_pop) - 1 else -1] if model.user_pop is None else model.user_pop[u]
    s = model.weights[0] * z(llm, i) + model.weights[2] * z([float(x) for x in row], i)
    if model.graph_users is not None and model.weights[1]:
        g = [float(np.dot(model.graph_users[u], model.graph_items[j])) for j in range(n)]
        s += model.weights[1] * z(g, i)
    if model.item_table is not None and model.weights[3]:
        from interestrec.recommend.itemitem import item_item_reference

        seq = [item_item_reference(model.item_table, model.history[u], model.seq_half_life, j) for j in range(n)]
        s += model.weights[3] * z(seq, i)
    return s


def cluster_popularity(users: np.ndarray, items: np.ndarray, times: np.ndarray, user_cluster: np.ndarray, k: int,
                       n_items: int, half_life_days: float = 180.0) -> np.ndarray:
    """Recency-decayed item popularity per cluster plus a global last row, each row scaled to max 1.

    The decay is relative to the newest event: weight ``0.5 ** ((t_max - t) / half_life)``.

    Shapes:
        users/items/times: ``(m,)`` index space; user_cluster: ``(n_users,)``; returns ``(k + 1, n_items)`` float32.
    """
    now = times.max() if len(times) else 0
    w = np.power(0.5, (now - times) / (half_life_days * 86400.0))
    pop = np.zeros((k + 1, n_items), np.float64)
    cl = user_cluster[users] if len(users) else np.zeros(0, np.int64)
    ok = (cl >= 0) & (cl < k)
    np.add.at(pop, (cl[ok], items[ok]), w[ok])
    np.add.at(pop[k], items, w)
    return (pop / np.maximum(pop.max(1, keepdims=True), 1e-12)).astype(np.float32)


def user_time_popularity(n_users: int, seq_user: np.ndarray, seq_item: np.ndarray, seq_time: np.ndarray,
                         user_cluster: np.ndarray, k: int, n_items: int, half_life_days: float = 90.0) -> np.ndarray:
    """Each user's cluster popularity as of their own last event (causal: only events up to then count).

    ``pop_u(i) = Σ_{events e of i by users of cluster(u), t_e ≤ now_u} 0.5 ** ((now_u - t_e) / half_life)``,
    scaled to max 1 per user; unassigned users get the global row. One sweep over users in time order.

    Shapes:
        seq_*: ``(m,)`` index space; user_cluster: ``(n_users,)``; returns ``(n_users, n_items)`` float32.
    """
    now = np.full(n_users, -np.inf)
    np.maximum.at(now, seq_user, seq_time.astype(np.float64))
    eo = np.argsort(seq_time, kind="stable")
    es, ei, et = seq_user[eo], seq_item[eo], seq_time[eo].astype(np.float64)
    ec = user_cluster[es] if len(es) else np.zeros(0, np.int64)
    pop = np.zeros((k + 1, n_items))
    out = np.zeros((n_users, n_items), np.float32)
    h = half_life_days * 86400.0
    t_prev, j = (et[0] if len(et) else 0.0), 0
    for u in np.argsort(now, kind="stable"):
        if not np.isfinite(now[u]):
            continue
        t = now[u]
        pop *= 0.5 ** ((t - t_prev) / h)
        t_prev = t
        j2 = int(np.searchsorted(et, t, side="right"))
        if j2 > j:
            w, c, it = 0.5 ** ((t - et[j:j2]) / h), ec[j:j2], ei[j:j2]
            ok = (c >= 0) & (c < k)
            np.add.at(pop, (c[ok], it[ok]), w[ok])
            np.add.at(pop[k], it, w)
            j = j2
        c = int(user_cluster[u])
        row = pop[c if 0 <= c < k else k]
        out[u] = row / max(row.max(), 1e-12)
    return out


def history_interests(n_users: int, seq_user: np.ndarray, seq_item: np.ndarray, seq_time: np.ndarray,
                      item_ids: np.ndarray, item_vecs: np.ndarray, half_life_days: float = 180.0,
                      max_interests: int = 4, given: list[np.ndarray | None] | None = None
                      ) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Every user's interest vectors (``encode.interests.user_interests``) and time-ordered history.

    ``given[u]`` (e.g. the encode stage's interests), when not ``None``, is used instead of recomputing.

    Shapes:
        seq_*: ``(m,)`` index space; returns per user ``(m_u, d)`` interests and ``(h_u,)`` item indices.
    """
    from interestrec.encode.interests import user_interests
    from interestrec.encode.pooling import decay

    order = np.lexsort((seq_item, seq_time, seq_user))
    su, si, st = seq_user[order], seq_item[order], seq_time[order]
    bounds = np.searchsorted(su, np.arange(n_users + 1))
    interests, history = [], []
    empty = np.zeros((0, item_vecs.shape[1]), np.float32)
    for u in range(n_users):
        items, times = si[bounds[u]:bounds[u + 1]], st[bounds[u]:bounds[u + 1]]
        history.append(items)
        if given is not None and given[u] is not None:
            interests.append(given[u])
            continue
        if len(items) == 0:
            interests.append(empty)
            continue
        its = user_interests(item_ids[items], item_vecs[items], decay(times, times.max(), half_life_days), max_interests)
        interests.append(np.stack([i.vector for i in its]))
    return interests, history


def build_model(item_ids: np.ndarray, item_vecs: np.ndarray, n_users: int, seq_user: np.ndarray, seq_item: np.ndarray,
                seq_time: np.ndarray, user_cluster: np.ndarray, k: int, graph_users: np.ndarray | None = None,
                graph_items: np.ndarray | None = None, half_life_days: float = 180.0,
                weights: tuple[float, ...] = DEFAULT_WEIGHTS,
                interests: list[np.ndarray | None] | None = None, item_table=None,
                seq_half_life: float = FusedParams.seq_half_life, llm_mode: str = FusedParams.llm_mode,
                llm_last: int = FusedParams.llm_last, llm_half_life: float = FusedParams.llm_half_life) -> FusedModel:
    """Assemble a :class:`FusedModel` from index-space arrays (``interests``: precomputed ones, see
    :func:`history_interests`; ``item_table``: the seq term's item–item table, see
    :func:`interestrec.recommend.itemitem.fit_item_item`).

    Shapes:
        item_vecs: ``(n_items, d)``; seq_*: ``(m,)``; user_cluster: ``(n_users,)``; graph_*: ``(n, g)``;
        item_table: sparse ``(n_items, n_items)``.
    """
    interests, history = history_interests(n_users, seq_user, seq_item, seq_time, item_ids, item_vecs, half_life_days,
                                           given=interests)
    pop = cluster_popularity(seq_user, seq_item, seq_time, user_cluster, k, len(item_ids), half_life_days)
    return FusedModel(item_ids, item_vecs, interests, user_cluster, pop, graph_users, graph_items, as_weights(weights),
                      history, item_table=item_table, seq_half_life=float(seq_half_life), llm_mode=llm_mode,
                      llm_last=int(llm_last), llm_half_life=float(llm_half_life))


def build_fused(data: Interactions, artifacts_dir: str, half_life_days: float = 180.0) -> FusedModel:
    """The fused model over an evaluation phase's training interactions and the pipeline's artifacts."""
    from interestrec.recommend import artifacts as ra

    root = ra.resolve_root(artifacts_dir)
    item_vecs = ra.load_item_vectors(root, data.item_ids, data.phase)  # the phase's leak-free vectors
    user_cluster = ra.load_assignments(root, data.user_ids)
    from interestrec import artifacts

    k = len(artifacts.read_npy(artifacts.join(root, "cluster", "centroids.npy")))
    gu, gi = ra.load_graph(root, data.user_ids, data.item_ids)
    return build_model(data.item_ids, item_vecs, data.n_users, data.seq_user, data.seq_item, data.seq_time,
                       user_cluster, k, gu, gi, half_life_days)


# ---------------------------------------------------------------------------------------------- top-k
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
          exclude_seen: bool = True, diversity: str = "none", pool: int = 4, components: dict | None = None
          ) -> list[Recommendation]:
    """Top-``k`` items for one user with explanations.

    Args:
        scores: the user's fused scores. interests: the user's interest vectors. history: item indices
            the user has seen (filtered when ``exclude_seen``). diversity: see :func:`diversify` (or
            ``"none"``); the diversified list is drawn from the best ``pool · k`` items.
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
    cand = np.argpartition(-scores, c - 1)[:c]
    cand = cand[np.lexsort((cand, -scores[cand]))]  # by score, ties by item index
    top = diversify(cand, scores, model.item_vecs, interests, k, diversity)
    iv = model.item_vecs
    sims = interests @ iv[top].T if len(interests) else np.zeros((1, len(top)))
    recent = history[-200:]
    near = np.argmax(iv[recent] @ iv[top].T, axis=0) if len(recent) else None
    out = []
    for r, i in enumerate(top):
        m = int(np.argmax(sims[:, r]))
        out.append(Recommendation(int(i), float(scores[i]), m, float(sims[m, r]), int(cluster),
                                  int(recent[near[r]]) if near is not None else None,
                                  {name: float(row[i]) for name, row in (components or {}).items()}))
    return out


# ---------------------------------------------------------------------------------------------- evaluation row
_BASE_CACHE: dict[tuple, FusedModel] = {}
_POP_CACHE: dict[tuple, np.ndarray] = {}
_TABLE_CACHE: dict[tuple, object] = {}
MAX_USER_POP_CELLS = 50_000_000  # beyond this the per-user popularity matrix is not built (global "now" instead)


@register
class Fused(Recommender):
    """The fused recommender as a row of the evaluation table (weights tuned on validation NDCG@10).

    In evaluation each user's popularity term is taken as of their own last training event
    (:func:`user_time_popularity`); serving uses the present for everyone. The interests and the
    item–item table (EASE ``lam``, ``neighbours`` per item) are built once per evaluation phase and
    shared by the grid points, which vary the weights (:data:`COMPONENTS` order) and the seq term's
    half-life in history positions: 24 points, plus 6 with the LLM term at item level (``llm_mode``).
    """

    name = "fused"
    baseline = False
    grid = [{"weights": w, "seq_half_life": h} for h in (3.0, 5.0, 10.0) for w in (
        (0.0, 0.0, 0.0, 1.0), (0.25, 0.25, 0.1, 1.0), (0.1, 0.25, 0.1, 1.0), (0.25, 0.0, 0.1, 1.0),
        (0.25, 0.25, 0.0, 1.0), (0.1, 0.1, 0.25, 1.0), (0.5, 0.5, 0.25, 1.0), (0.25, 0.25, 0.25, 1.0),
    )] + [{"weights": w, "seq_half_life": h, "llm_mode": "item_max"} for h in (3.0, 5.0) for w in (
        (0.1, 0.25, 0.1, 1.0), (0.25, 0.25, 0.1, 1.0), (0.5, 0.5, 0.25, 1.0),
    )]  # the LLM term at item level (recommend.llm_term)

    def fit(self, data: Interactions) -> Fused:
        if data.artifacts is None:
            raise FileNotFoundError("the fused recommender needs the pipeline artifacts directory (data.artifacts)")
        key = (str(data.artifacts), data.phase, data.n_users, data.n_items, len(data.seq_item),
               int(data.seq_item.sum()) if len(data.seq_item) else 0)
        if key not in _BASE_CACHE:
            _BASE_CACHE.clear()
            _POP_CACHE.clear()
            _TABLE_CACHE.clear()
            _BASE_CACHE[key] = build_fused(data, data.artifacts)
        base = _BASE_CACHE[key]
        fp = FusedParams.from_params(self.params)
        lam, neighbours, beta = float(fp.lam), int(fp.neighbours), float(fp.table_beta)
        if (key, lam, neighbours, beta) not in _TABLE_CACHE:
            from interestrec.recommend.itemitem import fit_item_item

            _TABLE_CACHE[(key, lam, neighbours, beta)] = fit_item_item(data.train, lam, neighbours,
                                                                       item_vecs=base.item_vecs, beta=beta)
        hl = float(fp.pop_half_life_days)
        user_pop = None
        if data.n_users * data.n_items <= MAX_USER_POP_CELLS:
            if (key, hl) not in _POP_CACHE:
                _POP_CACHE[(key, hl)] = user_time_popularity(data.n_users, data.seq_user, data.seq_item, data.seq_time,
                                                             base.user_cluster, len(base.cluster_pop) - 1, data.n_items, hl)
            user_pop = _POP_CACHE[(key, hl)]
        self.model = dataclasses.replace(base, weights=fp.weights, user_pop=user_pop,
                                         item_table=_TABLE_CACHE[(key, lam, neighbours, beta)], seq_half_life=fp.seq_half_life,
                                         llm_mode=fp.llm_mode, llm_last=fp.llm_last, llm_half_life=fp.llm_half_life)
        return self

    def score(self, users: np.ndarray) -> np.ndarray:
        return self.model.score(users)
