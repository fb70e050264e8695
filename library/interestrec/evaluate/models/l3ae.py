"""L3AE-style text-regularised EASE: the item–item model pulled towards an item-text item–item model.

``B = argmin ‖X − XB‖² + λ‖B‖² + β‖B − C‖²`` subject to ``diag(B) = 0``, where ``C`` is the
closed-form EASE solution on the item-text Gram matrix (``C = argmin ‖Eᵀ − EᵀC‖² + λ_t‖C‖²``,
``diag(C) = 0``; ``E`` the items' LLM vectors as rows). With ``G = XᵀX``, ``μ = λ + β`` and
``P = (G + μI)⁻¹`` the stationarity condition gives ``B = I − μP + βPC − P·diag(γ)`` with
``γ_j = (1 − μP_jj + β(PC)_jj) / P_jj`` enforcing the zero diagonal; ``β = 0`` is exactly EASE^R.

Both ``P`` and ``C`` come from the Woodbury path (users × users and d × d solves) and ``PC`` from
its low-rank form ``(C − Xᵀ (M C)) / μ`` with ``M = (XXᵀ + μI)⁻¹X``, so nothing items × items is
inverted. :func:`l3ae_weights_reference` solves each column's constrained least squares directly.
An item nobody interacted with still gets a column (its text neighbours through ``βC``).
"""

from __future__ import annotations

import numpy as np

from interestrec.evaluate.base import Interactions, Recommender, register


def text_item_weights(item_vecs: np.ndarray, lam_text: float) -> np.ndarray:
    """``C``: EASE on the item-text Gram matrix ``E Eᵀ`` (zero diagonal), via the Woodbury path.

    Shapes:
        item_vecs: ``(n_items, d)``; returns ``(n_items, n_items)`` float32.
    """
    from interestrec.evaluate.models.ease import ease_weights

    return ease_weights(np.ascontiguousarray(np.asarray(item_vecs, np.float32).T), lam_text)


def l3ae_weights(x, item_vecs: np.ndarray, lam: float, beta: float, lam_text: float = 1.0) -> np.ndarray:
    """The L3AE item–item weights (see the module docstring).

    Shapes:
        x: sparse or dense ``(n_users, n_items)``; item_vecs: ``(n_items, d)``; returns ``(n_items, n_items)`` float32.
    """
    import torch

    from interestrec.evaluate.models.ease import ease_weights

    if beta < 0 or lam <= 0:
        raise ValueError(f"l3ae: need lam > 0 and beta >= 0, got lam={lam}, beta={beta}")
    if beta == 0:
        return ease_weights(x, lam)
    n_users, n_items = x.shape
    if len(item_vecs) != n_items:
        raise ValueError(f"l3ae: {len(item_vecs)} item vectors for {n_items} items")
    mu = lam + beta
    c = torch.from_numpy(text_item_weights(item_vecs, lam_text))
    xd = torch.as_tensor(x.toarray() if hasattr(x, "toarray") else np.asarray(x), dtype=torch.float64)
    if n_users < n_items:
        k = xd @ xd.T
        k.diagonal().add_(mu)
        m = torch.linalg.solve(k, xd).to(torch.float32)  # (XXᵀ + μI)⁻¹ X
        x32 = xd.to(torch.float32)
        p = -(x32.T @ m)
        p.diagonal().add_(1.0)
        p /= mu
        pc = (c - x32.T @ (m @ c)) / mu
    else:
        g = xd.T @ xd
        g.diagonal().add_(mu)
        p = torch.cholesky_inverse(torch.linalg.cholesky(g)).to(torch.float32)
        pc = p @ c
    b = beta * pc
    b -= mu * p
    b.diagonal().add_(1.0)
    gamma = b.diagonal() / p.diagonal()
    b -= p * gamma[None, :]
    b.diagonal().zero_()
    return b.numpy()


def l3ae_weights_reference(x, item_vecs: np.ndarray, lam: float, beta: float, lam_text: float = 1.0) -> np.ndarray:
    """:func:`l3ae_weights` column by column: ``b_j = (G₋ⱼ₋ⱼ + μI)⁻¹ (G₋ⱼⱼ + β C₋ⱼⱼ)``, ``b_jj = 0``
    (with ``C`` likewise, column by column on ``E Eᵀ``). Slow and plain; for tests. Shapes: as there."""
    xd = np.asarray(x.toarray() if hasattr(x, "toarray") else x, np.float64)
    e = np.asarray(item_vecs, np.float64)
    n = xd.shape[1]

    def constrained(gram: np.ndarray, reg: float, prior: np.ndarray | None, strength: float) -> np.ndarray:
        out = np.zeros((n, n))
        for j in range(n):
            o = np.delete(np.arange(n), j)
            rhs = gram[o, j] + (strength * prior[o, j] if prior is not None else 0.0)
            out[o, j] = np.linalg.solve(gram[np.ix_(o, o)] + reg * np.eye(n - 1), rhs)
        return out

    c = constrained(e @ e.T, lam_text, None, 0.0)
    return constrained(xd.T @ xd, lam + beta, c, beta).astype(np.float32)


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
