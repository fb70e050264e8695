"""GraphSAGE rows of the evaluation table (trained in-process by the reference loop, :func:`fit_local`).

Hyper-parameters were chosen on the validation split (see ``docs/bench/train.md``); each row refits on
the phase's learnable interactions with a fixed number of epochs (no early stopping on the target).
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import numpy as np

from interestrec.evaluate.base import Interactions, Recommender, register
from interestrec.graph.config import GraphConfig
from interestrec.graph.train import embeddings, fit_local


class GraphRow(Recommender):
    """A trained :class:`~interestrec.graph.model.GraphRecommender` scored by dot products."""

    baseline = False
    overrides: ClassVar[dict] = {}

    def config(self, base: GraphConfig | None = None) -> GraphConfig:
        """The row's config: the pipeline's ``graph`` config (defaults without one), then the row's overrides,
        then the grid point."""
        return dataclasses.replace(base or GraphConfig(), **{**self.overrides, **self.params})

    def fit(self, data: Interactions) -> GraphRow:
        base = getattr(data.config, "graph", None)
        model, graph, self.curve = fit_local(data, self.config(base), seed=0, validate=False)
        self.users, self.items = embeddings(model, graph)
        return self

    def score(self, users: np.ndarray) -> np.ndarray:
        """Shapes: users ``(b,)`` → ``(b, n_items)``."""
        return self.users[users] @ self.items.T


@register
class GraphSAGE(GraphRow):
    name = "graphsage"


@register
class GraphSAGEAPR(GraphRow):
    name = "graphsage_apr"
    overrides: ClassVar[dict] = {"adversarial": True}


@register
class GAT(GraphRow):
    name = "gat"
    overrides: ClassVar[dict] = {"conv": "gat"}
