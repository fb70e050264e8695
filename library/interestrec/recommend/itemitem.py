"""The fused recommender's sequential collaborative term: recency-weighted item–item scores.

``seq(u, j) = Σ_p 0.5^(p / half_life) · T[h_u(-1-p), j]`` — the user's history read from the newest item
backwards (``p`` = steps from the end), each item voting for its neighbours in the item–item table ``T``.

``T`` is EASE^R (Steck, WWW 2019; :func:`interestrec.recommend.closed_form.ease_weights`) — or, with
``beta > 0``, its LLM-text-regularised form (:mod:`interestrec.recommend.closed_form`) — fitted on the
interaction matrix of the ``max_items`` most popular items and pruned to each item's ``neighbours``
largest weights, so it is sparse (``n_items × neighbours`` entries) for any catalogue. Reading the history
with a recency weight is what makes the term sequential: on leave-last-out MovieLens the next item is
far better predicted by the last few items than by the whole history (see ``docs/benchmarks.md``).

The table is a published artifact (``recommend/item_item.parquet``: ``item_id, neighbour_id, weight``,
written by the ``publish`` stage through :func:`fused_table`, which adds the text fill for items without
collaborative support, :mod:`interestrec.recommend.coldfill`); :func:`item_item_reference` is the plain
per-pair version the vectorised :func:`item_item_scores` is tested against.
"""

from __future__ import annotations

import numpy as np

from interestrec import layout

TABLE_FILE = layout.PUBLISH_ITEM_TABLE


def fit_item_item(x, lam: float = 100.0, neighbours: int = 256, max_items: int = 20_000,
                  item_vecs: np.ndarray | None = None, beta: float = 0.0, lam_text: float = 1.0):
    """EASE^R item–item weights (or L3AE's text-regularised ones), pruned to the ``neighbours`` largest per source item.

    Args:
        x: interactions ``(n_users, n_items)`` (sparse; values are used as given, usually 1).
        lam: EASE's L2 strength. neighbours: entries kept per row (by absolute weight).
        max_items: only the most popular items take part (bounds the dense ``m × m`` solve).
        item_vecs / beta / lam_text: with ``beta > 0`` the table is
            :func:`interestrec.recommend.closed_form.l3ae_weights` over the LLM item vectors ``(n_items, d)``
            (``beta = 0``: plain EASE^R).

    Shapes:
        returns a ``scipy.sparse.csr_matrix`` ``(n_items, n_items)`` float32; row ``i`` holds the items
        that a history containing ``i`` votes for.
    """
    import scipy.sparse as sp

    from interestrec.recommend.closed_form import ease_weights

    x = sp.csr_matrix(x, dtype=np.float32)
    n = x.shape[1]
    counts = np.asarray((x > 0).sum(0)).ravel()
    active = np.flatnonzero(counts > 0)
    if len(active) > max_items:
        active = np.sort(active[np.argsort(-counts[active], kind="stable")[:max_items]])
    if len(active) < 2:
        return sp.csr_matrix((n, n), dtype=np.float32)
    if beta > 0:
        from interestrec.recommend.closed_form import l3ae_weights

        if item_vecs is None:
            raise ValueError("fit_item_item: beta > 0 needs the item vectors")
        b = l3ae_weights(x[:, active], np.asarray(item_vecs)[active], lam, beta, lam_text)
    else:
        b = ease_weights(x[:, active], lam)
    k = min(neighbours, len(active) - 1)
    keep = np.argpartition(-np.abs(b), k - 1, axis=1)[:, :k]
    rows = np.repeat(np.arange(len(active)), k)
    cols = keep.ravel()
    vals = b[rows, cols]
    t = sp.csr_matrix((vals, (active[rows], active[cols])), shape=(n, n), dtype=np.float32)
    t.eliminate_zeros()
    return t


def table_from_events(user: np.ndarray, item: np.ndarray, n_users: int, n_items: int, lam: float = 100.0,
                      neighbours: int = 256, max_items: int = 20_000, item_vecs: np.ndarray | None = None,
                      beta: float = 0.0, lam_text: float = 1.0):
    """:func:`fit_item_item` over an event list (index space; repeated pairs count once).

    Shapes:
        user, item: ``(m,)``; returns sparse ``(n_items, n_items)``.
    """
    return fit_item_item(interaction_matrix(user, item, n_users, n_items), lam, neighbours, max_items, item_vecs, beta,
                         lam_text)


def interaction_matrix(user: np.ndarray, item: np.ndarray, n_users: int, n_items: int):
    """Binary users × items matrix of an event list (repeated pairs count once).

    Shapes:
        user, item: ``(m,)``; returns ``scipy.sparse.csr_matrix`` ``(n_users, n_items)`` float32.
    """
    import scipy.sparse as sp

    x = sp.csr_matrix((np.ones(len(user), np.float32), (user, item)), shape=(n_users, n_items))
    x.sum_duplicates()
    x.data[:] = 1.0
    return x


def fused_table(user: np.ndarray, item: np.ndarray, n_users: int, n_items: int, item_vecs: np.ndarray, params):
    """The fused model's seq-term table at ``params`` (:class:`~interestrec.recommend.fused.FusedParams`): EASE^R /
    L3AE over the events, with the text fill for items with little support when ``params.cold_alpha > 0``
    (:mod:`interestrec.recommend.coldfill`); written by ``publish``, fitted at load by an unpublished service.

    Shapes:
        user, item: ``(m,)``; item_vecs: ``(n_items, d)``; returns sparse ``(n_items, n_items)``.
    """
    from interestrec.recommend.coldfill import cold_filled

    x = interaction_matrix(user, item, n_users, n_items)
    b = fit_item_item(x, params.lam, params.neighbours, item_vecs=item_vecs, beta=params.table_beta)
    return cold_filled(b, x, item_vecs, params.cold_alpha, params.cold_support, params.cold_neighbours, params.neighbours)


def recency_weights(length: int, half_life: float) -> np.ndarray:
    """Weight of each history position, oldest first: ``0.5 ** (steps_from_end / half_life)``.

    ``half_life <= 0`` weighs every position 1. Shapes: returns ``(length,)`` float32.
    """
    if half_life <= 0:
        return np.ones(length, np.float32)
    steps = np.arange(length - 1, -1, -1, dtype=np.float64)
    return np.power(0.5, steps / half_life).astype(np.float32)


RESOLUTION_HALF_LIVES = 24  # 0.5 ** 24 = 2⁻²⁴: float32's resolution


def effective_length(length: int, half_life: float) -> int:
    """How many of a history's newest positions :func:`item_item_scores` reads.

    A position ``24 · half_life`` steps or more from the end weighs at most ``2⁻²⁴`` of the newest (float32's
    resolution), and all of them together at most ``2⁻²⁴ / (1 − 2^(−1/half_life))``: they are left out, so a
    long history costs what a short one does. ``half_life <= 0`` (every position weighs 1) reads them all.
    """
    if half_life <= 0:
        return length
    return min(length, int(np.ceil(RESOLUTION_HALF_LIVES * half_life)))


def item_item_scores(table, histories: list[np.ndarray], half_life: float) -> np.ndarray:
    """Sequential scores of every item for each history (oldest item first), from each history's
    :func:`effective_length` newest positions.

    Each kept position's table row (a slice of the CSR arrays) is gathered, weighed and summed into the
    history's row with one ``np.bincount``: for one user that takes half the time of building a sparse weight
    matrix and multiplying it by the table, which is what a served request scores.

    Shapes:
        table: CSR ``(n_items, n_items)``; histories[b]: ``(h_b,)`` item indices; returns ``(b, n_items)`` float32.
    """
    table = table.tocsr()  # the CSR itself when it is one already
    n = table.shape[0]
    indptr, indices, data = table.indptr, table.indices, table.data
    out = np.zeros((len(histories), n), np.float32)
    for b, h in enumerate(histories):
        h = np.asarray(h, np.int64)[len(h) - effective_length(len(h), half_life):]
        if not len(h):
            continue
        starts = indptr[h]
        lens = indptr[h + 1] - starts
        pos = np.arange(int(lens.sum())) + np.repeat(starts - (np.cumsum(lens) - lens), lens)  # the rows' entries
        weights = np.repeat(recency_weights(len(h), half_life), lens)
        out[b] = np.bincount(indices[pos], weights=data[pos] * weights, minlength=n)  # repeated items add up
    return out


def item_item_reference(table, history: np.ndarray, half_life: float, j: int) -> float:
    """One (history, item) score written out plainly (the reference for :func:`item_item_scores`)."""
    dense = table.toarray() if hasattr(table, "toarray") else np.asarray(table)
    total = 0.0
    for pos, i in enumerate(history):
        steps = len(history) - 1 - pos
        weight = 1.0 if half_life <= 0 else 0.5 ** (steps / half_life)
        total += weight * float(dense[int(i), j])
    return total


def write_table(path: str, table, item_ids: np.ndarray) -> None:
    """Write the table as ``item_id, neighbour_id, weight`` rows (parquet, atomically)."""
    import pyarrow as pa

    from interestrec import artifacts

    coo = table.tocoo()
    artifacts.write_parquet(path, pa.table({
        "item_id": pa.array(item_ids[coo.row], pa.int64()),
        "neighbour_id": pa.array(item_ids[coo.col], pa.int64()),
        "weight": pa.array(coo.data, pa.float32()),
    }))


def read_table(path: str, item_ids: np.ndarray):
    """Read a table written by :func:`write_table` into the index space of sorted ``item_ids``
    (rows naming items outside ``item_ids`` are dropped).

    Shapes:
        returns a ``scipy.sparse.csr_matrix`` ``(n_items, n_items)`` float32.
    """
    import scipy.sparse as sp

    from interestrec import artifacts
    from interestrec.ids import lookup

    t = artifacts.read_parquet(path)
    src, dst = lookup(item_ids, t["item_id"].to_numpy()), lookup(item_ids, t["neighbour_id"].to_numpy())
    ok = (src >= 0) & (dst >= 0)
    n = len(item_ids)
    return sp.csr_matrix((t["weight"].to_numpy()[ok].astype(np.float32), (src[ok], dst[ok])), shape=(n, n), dtype=np.float32)
