"""The fused recommender as rows of the evaluation table: ``fused`` (tuned on validation) and its ablations.

The model itself is :mod:`interestrec.recommend.fused`; this module only assembles it from an evaluation
phase's training interactions and the pipeline's artifacts. The parts that do not depend on the grid
point (interests, cluster popularity, the seq term's item–item table per ``(lam, neighbours)``, the
per-user popularity per half-life) are kept in a :class:`PhaseCache`, one evaluation phase at a time.

Ablations (``fused-no_llm``, ``fused-no_graph``, ``fused-no_pop``, ``fused-seq_only``, and ``fused-no_cold``
when the row has a text fill for cold items) are the fused row refit at its tuned params with terms' weights
set to 0 — no re-tuning (:data:`ABLATIONS`). ``fused-no_llm`` removes the language model everywhere it
enters the row: the ``llm`` term, the text regularisation of the item–item table (``table_beta``: L3AE
becomes EASE^R) and the text fill of cold items (``cold_alpha``), so it is the collaborative model alone. The fill's strength ``cold_alpha`` is chosen on validation by
the cold-item protocol (:mod:`interestrec.evaluate.cold_protocol`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from interestrec.encode.config import HALF_LIFE_DAYS
from interestrec.evaluate.base import Interactions, Recommender, register
from interestrec.recommend.fused import COMPONENTS, FusedInputs, FusedModel, FusedParams, build_model

MAX_USER_POP_CELLS = 50_000_000  # beyond this the per-user popularity matrix is not built (global "now" instead)

# ablation row name -> terms whose weight is set to 0 (at the fused row's tuned params); "cold" is the seq
# table's text fill for items without training support (its cold_alpha set to 0)
ABLATIONS: dict[str, tuple[str, ...]] = {
    "fused-no_llm": ("llm", "text_table", "cold"),  # every place the language model enters
    "fused-no_graph": ("graph",),
    "fused-no_pop": ("pop",),
    "fused-seq_only": tuple(c for c in COMPONENTS if c != "seq"),
    "fused-no_cold": ("cold",),
}


def build_fused(data: Interactions, artifacts_dir: str, half_life_days: float = HALF_LIFE_DAYS) -> FusedModel:
    """The fused model (default params) over an evaluation phase's training interactions and the pipeline's
    artifacts (encode item vectors, cluster assignments, graph embeddings when the graph stage ran).

    ``data.extras["item_vectors"]`` (``(n_items, d)``), when present, replaces the encode stage's item
    vectors (the cold-item protocol's content-only vectors); ``data.extras["no_graph"]`` drops the graph
    embeddings (learnt from interactions the phase withholds).
    """
    from interestrec import artifacts, layout
    from interestrec.recommend import artifacts as ra

    root = ra.resolve_root(artifacts_dir)
    item_vecs = data.extras.get("item_vectors")
    if item_vecs is None:
        item_vecs = ra.load_item_vectors(root, data.item_ids, data.phase)  # the phase's leak-free vectors
    user_cluster = ra.load_assignments(root, data.user_ids)
    k = len(artifacts.read_npy(artifacts.join(root, layout.CLUSTER, layout.CLUSTER_CENTROIDS)))
    gu, gi = (None, None) if data.extras.get("no_graph") else ra.load_graph(root, data.user_ids, data.item_ids)
    inputs = FusedInputs(data.item_ids, item_vecs, data.n_users, data.seq_user, data.seq_item, data.seq_time,
                         user_cluster, k, gu, gi, half_life_days=half_life_days)
    return build_model(inputs, FusedParams())


def phase_key(data: Interactions) -> tuple:
    """What identifies an evaluation phase's training data (cheap: sizes and a checksum of the events)."""
    return (str(data.artifacts), data.phase, data.n_users, data.n_items, len(data.seq_item),
            int(data.seq_item.sum()) if len(data.seq_item) else 0, id(data.extras.get("item_vectors")),
            bool(data.extras.get("no_graph")))


@dataclass
class PhaseCache:
    """The fused row's grid-independent parts for one evaluation phase (a new phase clears it)."""

    key: tuple | None = None
    base: FusedModel | None = None
    tables: dict[tuple[float, int, float], object] = field(default_factory=dict)
    fills: dict[tuple, object] = field(default_factory=dict)  # table key + (cold_support, cold_neighbours) -> fill
    user_pops: dict[float, np.ndarray] = field(default_factory=dict)

    def model(self, data: Interactions, params: FusedParams) -> FusedModel:
        """The fused model for ``data`` at ``params`` (reusing what this phase already built)."""
        from interestrec.recommend.coldfill import fill_table, item_support, text_fill
        from interestrec.recommend.itemitem import fit_item_item
        from interestrec.recommend.popularity import user_time_popularity

        key = phase_key(data)
        if key != self.key:
            self.clear()
            self.base = build_fused(data, data.artifacts)
            self.key = key
        base = self.base
        tk = (float(params.lam), int(params.neighbours), float(params.table_beta))
        if tk not in self.tables:
            self.tables[tk] = fit_item_item(data.train, tk[0], tk[1], item_vecs=base.item_vecs, beta=tk[2])
        table = self.tables[tk]
        if params.cold_alpha > 0:
            fk = (*tk, float(params.cold_support), int(params.cold_neighbours))
            if fk not in self.fills:
                self.fills[fk] = text_fill(table, item_support(data.train), base.item_vecs, fk[3], fk[4], tk[1])
            table = fill_table(table, self.fills[fk], params.cold_alpha)
        hl = float(params.pop_half_life_days)
        user_pop = None
        if data.n_users * data.n_items <= MAX_USER_POP_CELLS:
            if hl not in self.user_pops:
                self.user_pops[hl] = user_time_popularity(data.n_users, data.seq_user, data.seq_item, data.seq_time,
                                                          base.user_cluster, len(base.cluster_pop) - 1, data.n_items, hl)
            user_pop = self.user_pops[hl]
        return dataclasses.replace(base, params=params, user_pop=user_pop, item_table=table)

    def clear(self) -> None:
        self.key, self.base = None, None
        self.tables.clear()
        self.fills.clear()
        self.user_pops.clear()


@register
class Fused(Recommender):
    """The fused recommender as a row of the evaluation table (weights tuned on validation NDCG@10).

    In evaluation each user's popularity term is taken as of their own last training event
    (:func:`~interestrec.recommend.popularity.user_time_popularity`); serving uses the present for everyone.
    The grid varies the weights (:data:`~interestrec.recommend.fused.COMPONENTS` order) and the seq term's
    half-life in history positions: 24 points, plus 6 with the LLM term at item level (``llm_mode``,
    :mod:`interestrec.recommend.llm_term`), sharing one :class:`PhaseCache`.
    """

    name = "fused"
    baseline = False
    cache: ClassVar[PhaseCache] = PhaseCache()
    grid = [{"weights": w, "seq_half_life": h} for h in (3.0, 5.0, 10.0) for w in (
        (0.0, 0.0, 0.0, 1.0), (0.25, 0.25, 0.1, 1.0), (0.1, 0.25, 0.1, 1.0), (0.25, 0.0, 0.1, 1.0),
        (0.25, 0.25, 0.0, 1.0), (0.1, 0.1, 0.25, 1.0), (0.5, 0.5, 0.25, 1.0), (0.25, 0.25, 0.25, 1.0),
    )] + [{"weights": w, "seq_half_life": h, "llm_mode": "item_max"} for h in (3.0, 5.0) for w in (
        (0.1, 0.25, 0.1, 1.0), (0.25, 0.25, 0.1, 1.0), (0.5, 0.5, 0.25, 1.0),
    )]

    def fit(self, data: Interactions) -> Fused:
        if data.artifacts is None:
            raise FileNotFoundError("the fused recommender needs the pipeline artifacts directory (data.artifacts)")
        self.model = self.cache.model(data, FusedParams.from_params(self.params))
        return self

    def score(self, users: np.ndarray) -> np.ndarray:
        return self.model.score(users)


def ablation_rows(tuned: dict) -> list[str]:
    """The ablations of the fused row at ``tuned``: every one of :data:`ABLATIONS`, ``fused-no_cold`` only when
    the row has a text fill (``cold_alpha > 0``) to remove."""
    has_fill = FusedParams.from_params(tuned).cold_alpha > 0
    return [row for row in ABLATIONS if has_fill or ABLATIONS[row] != ("cold",)]


def ablation_params(tuned: dict, row: str) -> dict:
    """The params of ablation ``row``: the fused row's tuned ``tuned`` with that row's terms' weights at 0
    (``cold``: the text fill's ``cold_alpha`` at 0; ``text_table``: the table's text pull ``table_beta`` at 0)."""
    if row not in ABLATIONS:
        raise ValueError(f"unknown ablation '{row}'; expected one of {sorted(ABLATIONS)}")
    p = FusedParams.from_params(tuned).without(*(t for t in ABLATIONS[row] if t not in ("cold", "text_table")))
    out = {**tuned, "weights": tuple(p.weights)}
    if "cold" in ABLATIONS[row]:
        out["cold_alpha"] = 0.0
    if "text_table" in ABLATIONS[row]:
        out["table_beta"] = 0.0
    return out
