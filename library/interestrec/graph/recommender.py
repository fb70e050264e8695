"""GraphSAGE rows of the evaluation table (trained in-process by the reference loop)."""

from __future__ import annotations

import dataclasses

import numpy as np

from interestrec.evaluate.base import Interactions, Recommender, register
from interestrec.graph.config import GraphConfig
from interestrec.graph.train import embeddings, fit_local


class _GraphRow(Recommender):
    baseline = False
    overrides: dict = {}

    def fit(self, data: Interactions) -> _GraphRow:
        cfg = dataclasses.replace(GraphConfig(), **{**self.overrides, **self.params})
        model, graph, self.curve = fit_local(data, cfg, data.artifacts, seed=0)
        self.users, self.items = embeddings(model, graph)
        return self

    def score(self, users: np.ndarray) -> np.ndarray:
        return self.users[users] @ self.items.T


@register
class GraphSAGE(_GraphRow):
    name = "graphsage"
    grid = [{}]


@register
class GraphSAGEAPR(_GraphRow):
    name = "graphsage_apr"
    overrides = {"adversarial": True}
    grid = [{"eps": 0.5}]


@register
class GAT(_GraphRow):
    name = "gat"
    overrides = {"conv": "gat"}
    grid = [{}]
