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
- ``z``: standardisation over the items, per user, so the weights compare like with like
  (:mod:`~interestrec.recommend.zscore`).

The weights are tuned on the validation split (the ``fused`` row of the evaluation table); serving
reads the tuned ones from the published manifest. :func:`score_reference` is the obvious per-pair
version that the vectorised :meth:`FusedModel.score` is tested against. Neighbours: :mod:`~interestrec.recommend.popularity`
(the ``pop`` term), :mod:`~interestrec.recommend.interests` (interests and histories),
:mod:`~interestrec.recommend.topk` (filtering, diversification, explanations) and the evaluation row
``interestrec.evaluate.models.fused``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Generic, NamedTuple, TypeVar

import numpy as np

from interestrec.configcheck import check_config
from interestrec.encode.config import HALF_LIFE_DAYS
from interestrec.recommend.interests import history_interests
from interestrec.recommend.popularity import cluster_popularity
from interestrec.recommend.zscore import add_z_rows

T = TypeVar("T")


class Terms(NamedTuple, Generic[T]):
    """One value per term of the fused score, by name (weights, or the raw per-term score rows)."""

    llm: T
    graph: T
    pop: T
    seq: T


COMPONENTS = Terms._fields
DEFAULT_WEIGHTS = Terms(0.25, 0.25, 0.25, 1.0)  # the evaluation's tuned ones replace them


def as_weights(values) -> Terms[float]:
    """Fused weights by term; a sequence is read in :data:`COMPONENTS` order (a 3-tuple, published before the
    ``seq`` term, gets ``seq = 0``), a mapping by name (missing terms 0)."""
    if isinstance(values, dict):
        unknown = set(values) - set(COMPONENTS)
        if unknown:
            raise ValueError(f"unknown fused terms {sorted(unknown)}; expected {COMPONENTS}")
        return Terms(*(float(values.get(c, 0.0)) for c in COMPONENTS))
    w = tuple(float(v) for v in values)
    if len(w) == 3:
        w = (*w, 0.0)
    if len(w) != len(COMPONENTS):
        raise ValueError(f"fused weights need {len(COMPONENTS)} values {COMPONENTS}, got {len(w)}")
    return Terms(*w)


@dataclass(frozen=True)
class FusedParams:
    """The fused row's hyper-parameters, as tuned by the evaluation and published in the manifest.

    Attributes:
        weights: one weight per term (:class:`Terms`; compares equal to the plain 4-tuple).
        seq_half_life: history positions; the item ``k`` steps before the last weighs ``0.5^(k / this)``.
        lam / neighbours: EASE^R strength and entries kept per item of the seq term's item–item table.
        pop_half_life_days: decay of the evaluation's per-user time-aware popularity.
        table_beta: > 0 makes the seq term's table L3AE (EASE pulled towards the LLM item-text model,
            :mod:`interestrec.recommend.closed_form`); 0 is EASE^R.
        llm_mode / llm_last / llm_half_life: the LLM term's form (:mod:`interestrec.recommend.llm_term`):
            ``interest`` (max over interest vectors) or item level over the last ``llm_last`` history items.
        cold_alpha / cold_support / cold_neighbours: the seq table's text fill for items with little or no
            training support (:mod:`interestrec.recommend.coldfill`): its strength (0 = no fill, the table
            unchanged), the support at which its gate reaches 0, and the warm text neighbours whose columns
            a cold item's column averages (at most ``neighbours`` fill entries are kept per row).
    """

    weights: Terms[float] = DEFAULT_WEIGHTS
    seq_half_life: float = 5.0
    lam: float = 100.0
    neighbours: int = 256
    pop_half_life_days: float = 90.0
    table_beta: float = 0.0
    llm_mode: str = "interest"
    llm_last: int = 20
    llm_half_life: float = 5.0
    cold_alpha: float = 0.0
    cold_support: float = 1.0
    cold_neighbours: int = 10

    def __post_init__(self) -> None:
        from interestrec.recommend.llm_term import LLM_MODES

        object.__setattr__(self, "weights", as_weights(self.weights))
        check_config(self, "fused", ge={"lam": 0, "neighbours": 1, "table_beta": 0, "llm_last": 1, "cold_alpha": 0,
                                        "cold_neighbours": 1},
                     gt={"seq_half_life": 0, "pop_half_life_days": 0, "llm_half_life": 0, "cold_support": 0})
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
        return cls(**p)

    def without(self, *terms: str) -> FusedParams:
        """The same params with the named terms' weights set to 0 (an ablation)."""
        unknown = set(terms) - set(COMPONENTS)
        if unknown:
            raise ValueError(f"unknown fused terms {sorted(unknown)}; expected {COMPONENTS}")
        return dataclasses.replace(self, weights=self.weights._replace(**{t: 0.0 for t in terms}))


@dataclass
class FusedModel:
    """Arrays behind the fused score (index space of ``item_ids``) and the params that weigh them.

    Shapes:
        item_ids: ``(n_items,)``; item_vecs: ``(n_items, d)``; user_interests[u]: ``(m_u, d)``;
        user_cluster: ``(n_users,)`` (-1 = unassigned); cluster_pop: ``(k + 1, n_items)``, the last row
        global popularity; graph_users ``(n_users, g)`` / graph_items ``(n_items, g)`` or ``None``;
        history[u]: ``(h_u,)`` item indices, oldest first; user_pop: ``(n_users, n_items)`` or ``None``.
    """

    item_ids: np.ndarray
    item_vecs: np.ndarray
    user_interests: list[np.ndarray]
    user_cluster: np.ndarray
    cluster_pop: np.ndarray
    graph_users: np.ndarray | None = None
    graph_items: np.ndarray | None = None
    params: FusedParams = field(default_factory=FusedParams)
    history: list[np.ndarray] = field(default_factory=list)
    user_pop: np.ndarray | None = None  # popularity as of each user's own last event (evaluation)
    item_table: object | None = None  # sparse (n_items, n_items) item–item table of the seq term
    sim_rows: object | None = None  # a llm_term.SimilarityRows cache of the item-level term (serving)

    @property
    def weights(self) -> Terms[float]:
        return self.params.weights

    @property
    def seq_half_life(self) -> float:
        return self.params.seq_half_life

    def pop_rows(self, clusters: np.ndarray) -> np.ndarray:
        """Popularity rows for cluster ids (``-1`` or out of range → global). Shapes: returns ``(b, n_items)``."""
        c = np.asarray(clusters, np.int64)
        k = len(self.cluster_pop) - 1
        return self.cluster_pop[np.where((c >= 0) & (c < k), c, k)]

    def components(self, users: np.ndarray, interests: list[np.ndarray] | None = None,
                   clusters: np.ndarray | None = None, histories: list[np.ndarray] | None = None
                   ) -> Terms[np.ndarray | None]:
        """Raw per-term scores: LLM max-cosine, GraphSAGE dot (known users only), cluster popularity,
        sequential item–item (when the model has a table).

        ``interests`` / ``clusters`` / ``histories`` (item indices, oldest first) replace the stored ones
        (fresh state or a cold user); the graph term is used only for stored users (``interests is None``).

        Shapes:
            users: ``(b,)``; returns four ``(b, n_items)`` arrays (graph and seq may be ``None``).
        """
        from interestrec.recommend.llm_term import llm_scores

        its = interests if interests is not None else [self.user_interests[u] for u in users]
        hist = histories if histories is not None else [self.history[u] for u in users] if self.history else []
        p = self.params
        llm = llm_scores(p.llm_mode, self.item_vecs, its, hist, p.llm_last, p.llm_half_life, self.sim_rows)
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

            seq = item_item_scores(self.item_table, hist, p.seq_half_life)
        return Terms(llm=llm, graph=graph, pop=pop, seq=seq)

    def score(self, users: np.ndarray, interests: list[np.ndarray] | None = None,
              clusters: np.ndarray | None = None, histories: list[np.ndarray] | None = None) -> np.ndarray:
        """Fused scores (arguments as in :meth:`components`). Shapes: users ``(b,)``; returns ``(b, n_items)`` float32."""
        s = None
        for w, part in zip(self.weights, self.components(users, interests, clusters, histories)):
            if part is not None and w:
                s = add_z_rows(s, part, w)
        return s if s is not None else np.zeros((len(users), len(self.item_ids)), np.float32)


def score_reference(model: FusedModel, u: int, i: int) -> float:
    """The fused score of one (user, item) pair, written out plainly (the reference for :meth:`FusedModel.score`)."""
    n = len(model.item_ids)
    w = model.weights

    def z(values: list[float], j: int) -> float:
        mu = sum(values) / n
        sd = (sum((v - mu) ** 2 for v in values) / n) ** 0.5
        return (values[j] - mu) / sd if sd > 0 else 0.0

    its = model.user_interests[u]
    p = model.params
    if p.llm_mode == "interest":
        llm = [max(float(np.dot(m, model.item_vecs[j])) for m in its) if len(its) else 0.0 for j in range(n)]
    else:
        from interestrec.recommend.llm_term import item_level_reference

        llm = [item_level_reference(model.item_vecs, model.history[u], j, p.llm_mode, p.llm_last, p.llm_half_life)
               for j in range(n)]
    c = int(model.user_cluster[u])
    row = model.cluster_pop[c if 0 <= c < len(model.cluster_pop) - 1 else -1] if model.user_pop is None else model.user_pop[u]
    s = w.llm * z(llm, i) + w.pop * z([float(x) for x in row], i)
    if model.graph_users is not None and w.graph:
        g = [float(np.dot(model.graph_users[u], model.graph_items[j])) for j in range(n)]
        s += w.graph * z(g, i)
    if model.item_table is not None and w.seq:
        from interestrec.recommend.itemitem import item_item_reference

        hl = model.params.seq_half_life
        seq = [item_item_reference(model.item_table, model.history[u], hl, j) for j in range(n)]
        s += w.seq * z(seq, i)
    return s


@dataclass(frozen=True, eq=False)
class FusedInputs:
    """The index-space arrays a :class:`FusedModel` is assembled from (:func:`build_model`).

    Attributes:
        item_ids: original item ids, index = position; item_vecs: the items' LLM vectors.
        n_users: users in the index space.
        seq_user / seq_item / seq_time: the interactions the model learns from (user and item indices, UTC s).
        user_cluster: each user's cluster (-1 = unassigned); k: the number of clusters.
        graph_users / graph_items: GraphSAGE embeddings, or ``None`` (no graph term).
        interests: precomputed interest vectors per user (see
            :func:`~interestrec.recommend.interests.history_interests`; ``None`` = from the history).
        item_table: the seq term's item–item table (see :func:`interestrec.recommend.itemitem.fit_item_item`),
            or ``None``.
        half_life_days: recency half-life of the interests and the cluster popularity.

    Shapes:
        item_ids: ``(n_items,)``; item_vecs: ``(n_items, d)``; seq_*: ``(m,)``; user_cluster: ``(n_users,)``;
        graph_users: ``(n_users, g)``; graph_items: ``(n_items, g)``; interests[u]: ``(m_u, d)``;
        item_table: sparse ``(n_items, n_items)``.
    """

    item_ids: np.ndarray
    item_vecs: np.ndarray
    n_users: int
    seq_user: np.ndarray
    seq_item: np.ndarray
    seq_time: np.ndarray
    user_cluster: np.ndarray
    k: int
    graph_users: np.ndarray | None = None
    graph_items: np.ndarray | None = None
    interests: list[np.ndarray | None] | None = None
    item_table: object | None = None
    half_life_days: float = HALF_LIFE_DAYS


def build_model(inputs: FusedInputs, params: FusedParams) -> FusedModel:
    """Assemble a :class:`FusedModel` from index-space arrays, its terms weighed by ``params``."""
    x = inputs
    interests, history = history_interests(x.n_users, x.seq_user, x.seq_item, x.seq_time, x.item_ids, x.item_vecs,
                                           x.half_life_days, given=x.interests)
    pop = cluster_popularity(x.seq_user, x.seq_item, x.seq_time, x.user_cluster, x.k, len(x.item_ids), x.half_life_days)
    return FusedModel(x.item_ids, x.item_vecs, interests, x.user_cluster, pop, x.graph_users, x.graph_items, params,
                      history, item_table=x.item_table)
