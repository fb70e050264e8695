"""Cold items in the seq term: a text-derived fill for the item–item table's columns without collaborative support.

An EASE^R / L3AE table ``B`` (:mod:`interestrec.recommend.itemitem`) has an empty column for an item nobody
interacted with, so the fused model's dominant term can never lift it above warm items. The fill gives such
a target item ``j`` the column its text neighbours have: the cosine-weighted mean of the ``B`` columns of
its ``k`` nearest *warm* items (collaborative transfer through content, the kNN attribute-to-CF mapping of
Gantner et al., ICDM 2010), gated by its own training support ``s_j``:

``F[i, j] = g(s_j) · Σ_{j' ∈ N_k(j)} w_{jj'} · B[i, j']``,  ``w_{jj'} = cos⁺(v_j, v_j') / Σ_{N_k(j)} cos⁺``
``T = B + α · F⁺``

- ``g(s) = max(0, 1 − s / cold_support)``: 1 at zero support, decaying to 0 at ``cold_support`` users;
  targets are the items with ``g > 0``, neighbours ``N_k(j)`` the ``k`` (``cold_neighbours``) items with
  ``g = 0`` of largest positive cosine with ``v_j`` (ties by item index);
- ``F⁺``: the positive entries of ``F`` off the diagonal, at most ``per_row`` per row (the largest, ties by
  item index), so ``T`` stays sparse; being a mean of ``B``'s own columns, ``F`` is on ``B``'s scale;
- ``α`` (``FusedParams.cold_alpha``): chosen on validation by the cold-item protocol; ``α = 0`` is ``B`` itself.

:func:`filled_reference` is the per-pair form the vectorised :func:`cold_filled` is tested against.
"""

from __future__ import annotations

import numpy as np


def support_gate(support: np.ndarray, cold_support: float) -> np.ndarray:
    """``g(s) = max(0, 1 − s / cold_support)`` per item. Shapes: support ``(n,)``; returns ``(n,)`` float32."""
    if cold_support <= 0:
        raise ValueError(f"cold_support must be > 0, got {cold_support}")
    s = np.asarray(support, np.float64)
    return np.clip(1.0 - s / float(cold_support), 0.0, 1.0).astype(np.float32)


def item_support(x) -> np.ndarray:
    """Distinct users per item of an interaction matrix. Shapes: x ``(n_users, n_items)``; returns ``(n_items,)`` int64."""
    import scipy.sparse as sp

    x = sp.csr_matrix(x)
    return np.asarray((x > 0).sum(0)).ravel().astype(np.int64)


def _top_k_mask(s: np.ndarray, k: int) -> np.ndarray:
    """Per row, the ``k`` largest positive entries (ties by column index). Shapes: s ``(b, m)``; returns bool ``(b, m)``."""
    if k >= s.shape[1]:
        return s > 0
    kth = -np.partition(-s, k - 1, axis=1)[:, k - 1]
    greater = s > kth[:, None]
    equal = s == kth[:, None]
    need = k - greater.sum(1)
    keep = greater | (equal & (np.cumsum(equal, axis=1) <= need[:, None]))
    return keep & (s > 0)


def text_neighbours(item_vecs: np.ndarray, gate: np.ndarray, neighbours: int, chunk: int = 1024):
    """``W``: each target's (``g > 0``) cosine weights over its ``neighbours`` nearest warm items (``g = 0``),
    normalised to sum 1 (rows of other items, and of targets without a positive cosine, are empty).

    Shapes:
        item_vecs: ``(n, d)`` (rows need not be unit); gate: ``(n,)``; returns ``scipy.sparse.csr_matrix`` ``(n, n)`` float32.
    """
    import scipy.sparse as sp

    v = np.asarray(item_vecs, np.float32)
    n = len(v)
    norms = np.linalg.norm(v, axis=1)
    unit = v / np.where(norms > 0, norms, 1.0)[:, None]
    gate = np.asarray(gate)
    targets, sources = np.flatnonzero(gate > 0), np.flatnonzero(gate <= 0)
    if len(targets) == 0 or len(sources) == 0 or neighbours < 1:
        return sp.csr_matrix((n, n), dtype=np.float32)
    rows, cols, vals = [], [], []
    for lo in range(0, len(targets), chunk):
        tgt = targets[lo : lo + chunk]
        s = np.maximum(unit[tgt] @ unit[sources].T, 0.0)
        r, c = np.nonzero(_top_k_mask(s, neighbours))
        rows.append(tgt[r])
        cols.append(sources[c])
        vals.append(s[r, c])
    w = sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n),
                      dtype=np.float32)
    total = np.asarray(w.sum(1)).ravel()
    return sp.csr_matrix(sp.diags(np.where(total > 0, 1.0 / np.where(total > 0, total, 1.0), 0.0)) @ w,
                         dtype=np.float32)


def _prune_rows(f, per_row: int, offset: int = 0):
    """The positive entries of ``f`` off the diagonal (row ``r`` is item ``offset + r``), the ``per_row`` largest
    per row (ties by column). Shapes: ``(b, n)``."""
    import scipy.sparse as sp

    coo = sp.coo_matrix(f)
    ok = (coo.data > 0) & (coo.row + offset != coo.col)
    r, c, v = coo.row[ok], coo.col[ok], coo.data[ok]
    order = np.lexsort((c, -v, r))
    r, c, v = r[order], c[order], v[order]
    rank = np.arange(len(r)) - np.searchsorted(r, r, side="left")
    keep = rank < per_row
    return sp.csr_matrix((v[keep], (r[keep], c[keep])), shape=f.shape, dtype=np.float32)


def transfer_fill(b, w, gate: np.ndarray, per_row: int, chunk: int = 2048):
    """``F⁺``: ``F = (B Wᵀ) · diag(g)`` kept positive, off the diagonal, ``per_row`` entries per row.

    Shapes:
        b, w: sparse ``(n, n)``; gate: ``(n,)``; returns ``scipy.sparse.csr_matrix`` ``(n, n)`` float32.
    """
    import scipy.sparse as sp

    b = sp.csr_matrix(b, dtype=np.float32)
    n = b.shape[0]
    wt = sp.csr_matrix(sp.csr_matrix(w, dtype=np.float32).T @ sp.diags(np.asarray(gate, np.float32)), dtype=np.float32)
    parts = []
    for lo in range(0, n, chunk):
        parts.append(_prune_rows(b[lo : lo + chunk] @ wt, per_row, lo))  # no self-votes
    f = sp.vstack(parts, format="csr", dtype=np.float32) if parts else sp.csr_matrix((n, n), dtype=np.float32)
    f.sort_indices()
    return f


def fill_table(b, f, alpha: float):
    """``T = B + α · F⁺``; ``alpha == 0`` returns ``b`` itself (the table is unchanged, object and bytes).

    Shapes:
        b, f: sparse ``(n, n)``; returns sparse ``(n, n)`` float32.
    """
    import scipy.sparse as sp

    if alpha < 0:
        raise ValueError(f"cold_alpha must be >= 0, got {alpha}")
    if alpha == 0:
        return b
    t = sp.csr_matrix(sp.csr_matrix(b, dtype=np.float32) + sp.csr_matrix(f, dtype=np.float32) * np.float32(alpha),
                      dtype=np.float32)
    t.sort_indices()
    return t


def text_fill(b, support: np.ndarray, item_vecs: np.ndarray, cold_support: float, neighbours: int, per_row: int):
    """``F⁺`` of ``b`` for items with training ``support`` (see the module docstring).

    Shapes:
        b: sparse ``(n, n)``; support: ``(n,)``; item_vecs: ``(n, d)``; returns sparse ``(n, n)`` float32.
    """
    gate = support_gate(support, cold_support)
    return transfer_fill(b, text_neighbours(item_vecs, gate, neighbours), gate, per_row)


def cold_filled(b, x, item_vecs: np.ndarray, alpha: float, cold_support: float, neighbours: int, per_row: int):
    """:func:`fill_table` of ``b`` with the fill for the interactions ``x`` (``b`` itself when ``alpha == 0``).

    Shapes:
        b: sparse ``(n, n)``; x: ``(n_users, n)``; item_vecs: ``(n, d)``; returns sparse ``(n, n)``.
    """
    if alpha == 0:
        return b
    return fill_table(b, text_fill(b, item_support(x), item_vecs, cold_support, neighbours, per_row), alpha)


def filled_reference(b, item_vecs: np.ndarray, support: np.ndarray, alpha: float, cold_support: float,
                     neighbours: int, per_row: int) -> np.ndarray:
    """The filled table written out pair by pair (the reference for :func:`cold_filled`); slow, for tests.

    Shapes:
        b: ``(n, n)`` (sparse or dense); item_vecs: ``(n, d)``; support: ``(n,)``; returns dense ``(n, n)`` float64.
    """
    dense_b = np.asarray(b.toarray() if hasattr(b, "toarray") else b, np.float64)
    n = len(item_vecs)
    if alpha == 0:
        return dense_b
    gate = [max(0.0, 1.0 - float(support[k]) / cold_support) for k in range(n)]

    def cos(a: int, c: int) -> float:
        na, nc = float(np.linalg.norm(item_vecs[a])), float(np.linalg.norm(item_vecs[c]))
        return 0.0 if na == 0 or nc == 0 else float(np.dot(item_vecs[a], item_vecs[c])) / (na * nc)

    def ahead(values: dict[int, float], c: int) -> int:
        """Entries ranked before ``c``: larger, or equal with a smaller index."""
        return sum(1 for o, x in values.items() if x > values[c] or (x == values[c] and o < c))

    fill = np.zeros((n, n))
    for j in range(n):
        if gate[j] <= 0:
            continue
        sims = {o: max(cos(j, o), 0.0) for o in range(n) if gate[o] <= 0}
        near = {o: x for o, x in sims.items() if x > 0 and ahead(sims, o) < neighbours}
        total = sum(near.values())
        for i in range(n):
            if i != j and total > 0:
                fill[i, j] = gate[j] * sum(x / total * dense_b[i, o] for o, x in near.items())
    kept = np.zeros((n, n))
    for i in range(n):
        row = {c: fill[i, c] for c in range(n) if fill[i, c] > 0}
        for c in row:
            if ahead(row, c) < per_row:
                kept[i, c] = row[c]
    return dense_b + alpha * kept
