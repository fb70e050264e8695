"""L3AE-style text-regularised EASE as an evaluation row (the math and weights:
:mod:`interestrec.recommend.closed_form`)."""

from __future__ import annotations

import numpy as np

from interestrec.evaluate.base import Interactions, Recommender, register
from interestrec.recommend.closed_form import l3ae_weights


@register
class L3AE(Recommender):
    """EASE^R regularised towards the LLM item-text model (``beta = 0`` is EASE^R).

    Item vectors are the evaluation phase's leak-free ones (``encode.phases``). Params: ``lam``,
    ``beta`` (pull towards ``C``), ``lam_text`` (``C``'s own L2 strength). The grid varies ``beta`` at the
    ``lam`` EASE^R picks on validation on ml-latest-small; its ``beta = 0`` point is that EASE^R.
    """

    name = "l3ae"
    baseline = False
    grid = [{"lam": 50.0, "beta": beta, "lam_text": 1.0} for beta in (0.0, 25.0, 100.0, 400.0)]  # λ: EASE^R's tuned one

    def fit(self, data: Interactions) -> L3AE:
        from interestrec.evaluate.models.llm import load_item_vectors

        if data.artifacts is None:
            raise FileNotFoundError("l3ae needs the encode stage's item vectors (data.artifacts)")
        vecs = load_item_vectors(data.artifacts, data.item_ids, data.phase)
        self.x = data.train.astype(np.float32).tocsr()
        self.b = l3ae_weights(self.x, vecs, float(self.params.get("lam", 100.0)), float(self.params.get("beta", 0.0)),
                              float(self.params.get("lam_text", 1.0)))
        return self

    def score(self, users: np.ndarray) -> np.ndarray:
        return np.asarray(self.x[users] @ self.b, dtype=np.float32)
