"""Closed-form item–item models: EASE^R (Steck, WWW 2019) and its text-regularised L3AE form.

Shared by the evaluation's ``ease`` / ``l3ae`` rows (:mod:`interestrec.evaluate.models.ease`,
:mod:`interestrec.evaluate.models.l3ae`) and the served sequential term's item–item table
(:mod:`interestrec.recommend.itemitem`).

EASE^R: ``B = argmin ‖X − XB‖² + λ‖B‖²`` subject to ``diag(B) = 0``. L3AE: the item–item model pulled
towards an item-text item–item model,
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


def ease_weights(x, lam: float) -> np.ndarray:
    """``B = I - P · diag(1/diag(P))`` with ``P = (XᵀX + λI)⁻¹``, so ``diag(B) = 0``.

    With fewer users than items ``P`` comes from the Woodbury identity,
    ``P = (I - Xᵀ (XXᵀ + λI)⁻¹ X) / λ``: a users × users solve instead of an items × items inverse
    (on ml-latest-small, 610 × 610 instead of 9,742 × 9,742). :func:`ease_weights_direct` is the
    plain form, kept as the reference.

    Shapes:
        x: sparse or dense ``(n_users, n_items)``; returns dense ``(n_items, n_items)`` float32.
    """
    import torch

    n_users, n_items = x.shape
    if n_users >= n_items:
        return ease_weights_direct(x, lam)
    xd = torch.as_tensor(x.toarray() if hasattr(x, "toarray") else np.asarray(x), dtype=torch.float64)
    k = xd @ xd.T
    k.diagonal().add_(lam)
    m = torch.linalg.solve(k, xd)  # (XXᵀ + λI)⁻¹ X, float64 (small)
    p = -(xd.T.to(torch.float32) @ m.to(torch.float32))  # the big product in float32
    p.diagonal().add_(1.0)
    p /= lam
    b = -p / p.diagonal()[None, :]
    b.diagonal().zero_()
    return b.numpy()


def ease_weights_direct(x, lam: float) -> np.ndarray:
    """:func:`ease_weights` by the items × items inverse (Cholesky). Shapes: as there."""
    import torch

    g = torch.as_tensor((x.T @ x).toarray() if hasattr(x, "toarray") else x.T @ x, dtype=torch.float32)
    g.diagonal().add_(lam)
    p = torch.cholesky_inverse(torch.linalg.cholesky(g))
    b = -p / p.diagonal()[None, :]
    b.diagonal().zero_()
    return b.to(torch.float32).numpy()


def text_item_weights(item_vecs: np.ndarray, lam_text: float) -> np.ndarray:
    """``C``: EASE on the item-text Gram matrix ``E Eᵀ`` (zero diagonal), via the Woodbury path.

    Shapes:
        item_vecs: ``(n_items, d)``; returns ``(n_items, n_items)`` float32.
    """
    return ease_weights(np.ascontiguousarray(np.asarray(item_vecs, np.float32).T), lam_text)


def l3ae_weights(x, item_vecs: np.ndarray, lam: float, beta: float, lam_text: float = 1.0) -> np.ndarray:
    """The L3AE item–item weights (see the module docstring).

    Shapes:
        x: sparse or dense ``(n_users, n_items)``; item_vecs: ``(n_items, d)``; returns ``(n_items, n_items)`` float32.
    """
    import torch

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
