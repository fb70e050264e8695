"""EASE^R (Steck, WWW 2019): closed-form item–item linear autoencoder with a zero diagonal
(the weights: :func:`interestrec.recommend.closed_form.ease_weights`)."""

from __future__ import annotations

import numpy as np

from interestrec.evaluate.base import Interactions, Recommender, register
from interestrec.recommend.closed_form import ease_weights


@register
class EASE(Recommender):
    name = "ease"
    baseline = True
    grid = [{"lam": 25.0}, {"lam": 50.0}, {"lam": 100.0}, {"lam": 250.0}, {"lam": 500.0}]

    def fit(self, data: Interactions) -> EASE:
        x = data.train.astype(np.float32).tocsr()
        # items nobody interacted with have all-zero rows/columns in B: solve only for the others
        self.active = np.flatnonzero(np.asarray(x.sum(0)).ravel() > 0)
        self.x = x[:, self.active]
        self.b = ease_weights(self.x, float(self.params.get("lam", 250.0)))
        self.n_items = data.n_items
        return self

    def score(self, users: np.ndarray) -> np.ndarray:
        out = np.zeros((len(users), self.n_items), np.float32)
        out[:, self.active] = self.x[users] @ self.b
        return out
