"""SASRec's training data: per-user item sequences, next-item windows cut from the most recent end,
the last window of a user to score from, and length-grouped mini-batches
(:mod:`interestrec.evaluate.models.sasrec`).
"""

from __future__ import annotations

import numpy as np


def user_sequences(seq_user: np.ndarray, seq_item: np.ndarray, n_users: int, n_items: int):
    """Group a (user, then time)-sorted event list into per-user sequences.

    Returns:
        ``(indptr, items)``: user ``u``'s sequence is ``items[indptr[u]:indptr[u + 1]]``, oldest first.

    Shapes:
        seq_user, seq_item: ``(nnz,)``; indptr: ``(n_users + 1,)``; items: ``(nnz,)`` int64.

    Raises:
        ValueError: lengths differ, indices are out of range, or users are not sorted.
    """
    seq_user = np.asarray(seq_user, dtype=np.int64)
    seq_item = np.asarray(seq_item, dtype=np.int64)
    if seq_user.shape != seq_item.shape or seq_user.ndim != 1:
        raise ValueError(f"SASRec: seq_user {seq_user.shape} and seq_item {seq_item.shape} must be equal 1-d arrays")
    if len(seq_user):
        if seq_user.min() < 0 or seq_user.max() >= n_users:
            raise ValueError(f"SASRec: seq_user holds indices outside 0..{n_users - 1}")
        if seq_item.min() < 0 or seq_item.max() >= n_items:
            raise ValueError(f"SASRec: seq_item holds indices outside 0..{n_items - 1}")
        if (np.diff(seq_user) < 0).any():
            raise ValueError("SASRec: the event list must be sorted by user, then time")
    indptr = np.zeros(n_users + 1, np.int64)
    np.cumsum(np.bincount(seq_user, minlength=n_users), out=indptr[1:])
    return indptr, seq_item


def training_windows(indptr: np.ndarray, items: np.ndarray, max_len: int) -> tuple[np.ndarray, np.ndarray]:
    """Next-item training pairs of every user, cut from the most recent end into right-padded windows.

    Tokens are ``item + 1`` (0 is padding); targets are item indices, ``-100`` at padding.

    Shapes:
        returns ``inputs`` ``(w, max_len)`` int64 and ``targets`` ``(w, max_len)`` int64.
    """
    inputs, targets = [], []
    for u in range(len(indptr) - 1):
        s = items[indptr[u] : indptr[u + 1]]
        end = len(s) - 1  # pairs (s[t], s[t+1]) for t < end
        while end > 0:
            start = max(0, end - max_len)
            x = np.zeros(max_len, np.int64)
            y = np.full(max_len, -100, np.int64)
            x[: end - start] = s[start:end] + 1
            y[: end - start] = s[start + 1 : end + 1]
            inputs.append(x)
            targets.append(y)
            end = start
    if not inputs:
        return np.zeros((0, max_len), np.int64), np.zeros((0, max_len), np.int64)
    return np.stack(inputs), np.stack(targets)


def last_window(indptr: np.ndarray, items: np.ndarray, users: np.ndarray, max_len: int) -> tuple[np.ndarray, np.ndarray]:
    """The most recent ``max_len`` items of each user as right-padded tokens, and how many are real.

    Shapes:
        users: ``(b,)``; returns tokens ``(b, max_len)`` int64 and lengths ``(b,)`` int64.
    """
    tokens = np.zeros((len(users), max_len), np.int64)
    lengths = np.zeros(len(users), np.int64)
    for r, u in enumerate(users):
        s = items[max(indptr[u], indptr[u + 1] - max_len) : indptr[u + 1]]
        tokens[r, : len(s)] = s + 1
        lengths[r] = len(s)
    return tokens, lengths


def length_batches(lengths: np.ndarray, batch: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Shuffled mini-batches of windows of similar length (less padding to compute through).

    Windows are sorted by length with random tie-breaking, cut into consecutive batches, and the
    batch order is shuffled; every window appears exactly once per call.

    Shapes:
        lengths: ``(w,)``; returns a list of index arrays of at most ``batch`` windows each.
    """
    order = np.lexsort((rng.random(len(lengths)), lengths))
    batches = [order[lo : lo + batch] for lo in range(0, len(order), batch)]
    return [batches[k] for k in rng.permutation(len(batches))]
