"""The pure LLM-vector model: user interest vector · item vector.

Item vectors come from the encode stage, the evaluation phase's leak-free ones (``encode/items_valid.parquet``
/ ``items_test.parquet``, see ``encode.phases``). The user vector is pooled the same
way the encode stage pools (recency-decayed mean of the user's item vectors, ``encode.pooling``) over
exactly the interactions this evaluation phase may learn from, so the test phase includes the
validation item like every other model's history.
"""

from __future__ import annotations

import numpy as np

from interestrec.encode.config import HALF_LIFE_DAYS
from interestrec.evaluate.base import Interactions, Recommender, register


def load_item_vectors(artifacts_dir: str, item_ids: np.ndarray, phase: str | None = None) -> np.ndarray:
    """Encode-stage item vectors aligned with ``item_ids`` (zeros for items without one); ``phase``
    (``valid``/``test``) picks that evaluation phase's leak-free vectors, ``None`` the serving ones.

    Shapes:
        returns ``(len(item_ids), d)`` float32.
    """
    from interestrec import artifacts
    from interestrec.encode.phases import item_vectors_path
    from interestrec.ids import align_table

    path = item_vectors_path(artifacts_dir, phase)
    if not artifacts.exists(path):
        raise FileNotFoundError(path)
    t = artifacts.read_parquet(path)
    return align_table(t, item_ids)


@register
class LLMVectors(Recommender):
    name = "llm"
    baseline = False
    grid = [{"half_life_days": 30.0}, {"half_life_days": 180.0}, {"half_life_days": 1e6}]

    def fit(self, data: Interactions) -> LLMVectors:
        from interestrec.encode.pooling import pool_user_vectors

        if data.artifacts is None:
            raise FileNotFoundError("no pipeline artifacts directory")
        self.items = load_item_vectors(data.artifacts, data.item_ids, data.phase)
        last = np.zeros(data.n_users, np.int64)
        np.maximum.at(last, data.seq_user, data.seq_time)
        self.users, _ = pool_user_vectors(data.seq_user, data.seq_item, data.seq_time, np.ones(len(data.seq_user)),
                                          self.items, data.n_users, last[data.seq_user],
                                          float(self.params.get("half_life_days", HALF_LIFE_DAYS)))
        return self

    def score(self, users: np.ndarray) -> np.ndarray:
        return self.users[users] @ self.items.T
