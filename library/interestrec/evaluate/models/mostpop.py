"""MostPop: items ranked by how many train users interacted with them."""

from __future__ import annotations

import numpy as np

from interestrec.evaluate.base import Interactions, Recommender, register


@register
class MostPop(Recommender):
    name = "mostpop"
    baseline = True

    def fit(self, data: Interactions) -> MostPop:
        self.pop = np.asarray((data.train > 0).sum(0)).ravel().astype(np.float32)
        return self

    def score(self, users: np.ndarray) -> np.ndarray:
        return np.broadcast_to(self.pop, (len(users), len(self.pop))).copy()
