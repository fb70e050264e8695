"""Cold-start judging: the cold-item protocol's building blocks and the cold-user slice.

**Cold items.** A seeded share of the catalogue has every training interaction withheld
(:func:`withhold_items`): in the valid phase those of the train split, in the test phase those of train +
valid, so the cold items' own interactions only remain as held-out targets (a user's valid or test item).
Content rows see the withheld items through text only — their vectors are re-encoded from the catalogue's
own fields (title, year, genres), never from event-derived parts such as tags or reviews
(:func:`content_only_vectors`). The protocol itself (the fill strength chosen on validation, every row
judged on all / warm / cold test targets) is :mod:`interestrec.evaluate.cold_protocol`.

**Cold users.** The main table's ranks restricted to users with at most ``max_events`` training events.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from interestrec.evaluate import metrics
from interestrec.evaluate.base import Interactions


def choose_cold_items(n_items: int, share: float, seed: int) -> np.ndarray:
    """``round(share · n_items)`` item indices drawn without replacement (seeded), sorted.

    Shapes:
        returns ``(c,)`` int64.
    """
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n_items, int(round(share * n_items)), replace=False)).astype(np.int64)


def withhold_items(data: Interactions, cold: np.ndarray) -> Interactions:
    """``data`` with every training interaction of the ``cold`` items removed; every target is kept (a user
    whose target is a cold item is a *cold target*, see :func:`cold_targets`)."""
    import scipy.sparse as sp

    is_cold = np.zeros(data.n_items, bool)
    is_cold[cold] = True
    keep = ~is_cold[data.seq_item]
    su, si, st = data.seq_user[keep], data.seq_item[keep], data.seq_time[keep]
    train = sp.csr_matrix(data.train, copy=True)
    train = sp.csr_matrix(train.multiply(~is_cold[None, :]))
    train.eliminate_zeros()
    return dataclasses.replace(data, train=train, seq_user=su, seq_item=si, seq_time=st,
                               extras={**data.extras, "cold_items": np.asarray(cold, np.int64)})


def cold_targets(data: Interactions, users: np.ndarray) -> np.ndarray:
    """Whether each of ``users``' target is one of ``data.extras["cold_items"]`` (none without that key).

    Shapes:
        users: ``(m,)`` user indices with a target; returns ``(m,)`` bool.
    """
    is_cold = np.zeros(data.n_items, bool)
    is_cold[np.asarray(data.extras.get("cold_items", np.zeros(0, np.int64)), np.int64)] = True
    t = data.target[users]
    return (t >= 0) & is_cold[np.maximum(t, 0)]


def content_only_texts(items, item_ids: np.ndarray, which: np.ndarray, description_words: int = 0) -> list[str]:
    """Texts of items ``which`` (indices into ``item_ids``) from catalogue fields only (no tags; the
    description's first ``description_words`` words, as the encode stage writes them)."""
    from interestrec.encode.phases import catalogue_descriptions
    from interestrec.encode.text import item_text

    d = items.select(["item_id", "title", "year", "genres"]).to_pydict()
    descs = catalogue_descriptions(items, description_words)
    row = {int(i): n for n, i in enumerate(d["item_id"])}
    out = []
    for i in item_ids[which]:
        n = row.get(int(i))
        out.append(item_text(str(i)) if n is None else item_text(
            d["title"][n], d["year"][n], d["genres"][n], description=descs[n], description_words=description_words))
    return out


def encode_content_only(items, item_ids: np.ndarray, cold: np.ndarray, model: str | None,
                        description_words: int = 0) -> np.ndarray:
    """The ``cold`` items' vectors from content-only text (:func:`content_only_texts`), with the encode model.

    Shapes:
        returns ``(len(cold), d)`` float32.
    """
    from interestrec.encode.encoder import TextEncoder

    enc = TextEncoder(model, device="cpu")
    texts = content_only_texts(items, item_ids, cold, description_words)
    return np.asarray(enc.encode(texts), np.float32).reshape(len(cold), enc.dim)


def content_only_vectors(artifacts_dir: str, items, item_ids: np.ndarray, cold: np.ndarray, model: str | None,
                         phase: str = "test", cold_vectors: np.ndarray | None = None) -> np.ndarray:
    """The encode stage's ``phase`` item vectors (leak-free for that evaluation phase) with the ``cold`` items'
    rows re-encoded from content-only text (``cold_vectors``: those rows already encoded, in ``cold`` order).

    Shapes:
        cold_vectors: ``(len(cold), d)``; returns ``(len(item_ids), d)`` float32.
    """
    from interestrec.recommend import artifacts as ra

    vecs = ra.load_item_vectors(ra.resolve_root(artifacts_dir), item_ids, phase).copy()
    if len(cold):
        enc = cold_vectors if cold_vectors is not None else encode_content_only(items, item_ids, cold, model)
        if enc.shape[1] != vecs.shape[1]:
            raise ValueError(f"encode/items.parquet holds {vecs.shape[1]}-d vectors but the content-only encoding "
                             f"gives {enc.shape[1]}-d: the cold items cannot be re-encoded consistently (set encode.model)")
        vecs[cold] = enc
    return vecs


def training_events_per_user(data: Interactions) -> np.ndarray:
    """Training interactions per user index. Shapes: returns ``(n_users,)`` int64."""
    return np.bincount(data.seq_user, minlength=data.n_users).astype(np.int64)


def cold_user_slice(data: Interactions, rankings: dict, max_events: int = 3) -> dict:
    """Every row's metrics over the users with at most ``max_events`` training events.

    Args:
        rankings: row name → :class:`~interestrec.evaluate.protocol.Ranking` on ``data``.
    """
    n_ev = training_events_per_user(data)
    out = {"max_events": max_events, "users": int(((n_ev <= max_events) & (data.target >= 0)).sum()), "models": {}}
    for name, r in rankings.items():
        sel = n_ev[r.users] <= max_events
        rank = r.rank[sel]
        out["models"][name] = {"ndcg@10": metrics.ndcg(rank, 10), "recall@20": metrics.recall(rank, 20),
                               "ndcg@20": metrics.ndcg(rank, 20), "users": int(sel.sum())}
    return out
