"""SASRec whose item embeddings start from PCA-reduced LLM item vectors (Harte et al., RecSys'23).

The evaluation phase's leak-free item vectors (``encode.phases``) are centred and projected onto their
top ``dim`` principal directions, then scaled so the entries have SASRec's initial standard deviation
(``dim^-0.5``); items without a vector keep the random initialisation. Training is SASRec's own.
"""

from __future__ import annotations

import numpy as np

from interestrec.evaluate.base import Interactions, register
from interestrec.evaluate.models.sasrec import SASRecRecommender


def pca_reduce(vecs: np.ndarray, dim: int) -> np.ndarray:
    """Centred projection onto the top ``dim`` principal directions (rows that are all zero stay zero).

    Shapes:
        vecs: ``(n, d)`` with ``dim <= d``; returns ``(n, dim)`` float32, columns by decreasing variance.
    """
    x = np.asarray(vecs, np.float64)
    if not 0 < dim <= x.shape[1]:
        raise ValueError(f"pca_reduce: dim must be in 1..{x.shape[1]}, got {dim}")
    has = np.any(x, axis=1)
    out = np.zeros((len(x), dim), np.float32)
    if has.sum() < 2:
        return out
    xc = x[has] - x[has].mean(0)
    _, _, vt = np.linalg.svd(xc, full_matrices=False)
    comp = vt[:dim]
    proj = xc @ comp.T
    sign = np.sign(proj[np.argmax(np.abs(proj), axis=0), np.arange(dim)])  # deterministic orientation
    out[has] = proj * np.where(sign == 0, 1.0, sign)
    return out


@register
class SASRecLLM(SASRecRecommender):
    """SASRec initialised from PCA-reduced LLM item vectors (same params and grid as ``sasrec``)."""

    name = "sasrec_llm"
    baseline = False

    def initial_item_embeddings(self, data: Interactions) -> np.ndarray | None:
        from interestrec.evaluate.models.llm import load_item_vectors

        if data.artifacts is None:
            raise FileNotFoundError("sasrec_llm needs the encode stage's item vectors (data.artifacts)")
        vecs = load_item_vectors(data.artifacts, data.item_ids, data.phase)
        dim = int(self.cfg.dim)
        red = pca_reduce(vecs, dim)
        has = np.any(red, axis=1)
        std = float(red[has].std()) if has.any() else 0.0
        rng = np.random.default_rng(int(self.cfg.seed))
        init = rng.normal(0.0, dim**-0.5, size=red.shape).astype(np.float32)
        if std > 0:
            init[has] = red[has] * (dim**-0.5 / std)
        self.init_embeddings = init
        return init
