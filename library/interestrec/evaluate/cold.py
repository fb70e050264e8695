"""Cold-start judging: the cold-item protocol and the cold-user slice.

**Cold items.** A seeded share of the catalogue has every training interaction withheld (test phase:
train + valid). The test users whose held-out item is one of them are ranked over all items (history
filtered as usual) by rows refit on the withheld data at their validation-tuned params (no grid). A
collaborative row has no signal for a withheld item: its column is empty, so it can only place it by
chance. Content rows see the withheld items through text only — their vectors are re-encoded from the
catalogue's own fields (title, year, genres), never from event-derived parts such as tags — and the
graph embeddings (learnt from the withheld edges) are not used.

**Cold users.** The main table's ranks restricted to users with at most ``max_events`` training events.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np

from interestrec.evaluate import metrics
from interestrec.evaluate.base import REGISTRY, Interactions


def choose_cold_items(n_items: int, share: float, seed: int) -> np.ndarray:
    """``round(share · n_items)`` item indices drawn without replacement (seeded), sorted.

    Shapes:
        returns ``(c,)`` int64.
    """
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n_items, int(round(share * n_items)), replace=False)).astype(np.int64)


def withhold_items(data: Interactions, cold: np.ndarray) -> Interactions:
    """``data`` with every training interaction of the ``cold`` items removed; only users whose target is
    a cold item keep their target (others get ``-1``)."""
    import scipy.sparse as sp

    is_cold = np.zeros(data.n_items, bool)
    is_cold[cold] = True
    keep = ~is_cold[data.seq_item]
    su, si, st = data.seq_user[keep], data.seq_item[keep], data.seq_time[keep]
    train = sp.csr_matrix(data.train, copy=True)
    train = sp.csr_matrix(train.multiply(~is_cold[None, :]))
    train.eliminate_zeros()
    target = np.where((data.target >= 0) & is_cold[np.maximum(data.target, 0)], data.target, -1)
    return dataclasses.replace(data, train=train, seq_user=su, seq_item=si, seq_time=st, target=target,
                               extras={**data.extras, "cold_items": cold})


def content_only_texts(items, item_ids: np.ndarray, which: np.ndarray) -> list[str]:
    """Texts of items ``which`` (indices into ``item_ids``) from catalogue fields only (no tags)."""
    from interestrec.encode.text import item_text

    d = items.select(["item_id", "title", "year", "genres"]).to_pydict()
    row = {int(i): n for n, i in enumerate(d["item_id"])}
    out = []
    for i in item_ids[which]:
        n = row.get(int(i))
        out.append(item_text(str(i)) if n is None else item_text(d["title"][n], d["year"][n], d["genres"][n]))
    return out


def content_only_vectors(artifacts_dir: str, items, item_ids: np.ndarray, cold: np.ndarray,
                         model: str | None) -> np.ndarray:
    """The encode stage's item vectors with the ``cold`` items' rows re-encoded from content-only text.

    Shapes:
        returns ``(len(item_ids), d)`` float32.
    """
    from interestrec.encode.encoder import TextEncoder
    from interestrec.recommend import artifacts as ra

    vecs = ra.load_item_vectors(ra.resolve_root(artifacts_dir), item_ids, "test").copy()  # leak-free test phase
    if len(cold):
        enc = TextEncoder(model, device="cpu")
        if enc.dim != vecs.shape[1]:
            raise ValueError(f"encode/items.parquet holds {vecs.shape[1]}-d vectors but encoder '{enc.model_id}' gives "
                             f"{enc.dim}-d: the cold items cannot be re-encoded consistently (set encode.model)")
        vecs[cold] = enc.encode(content_only_texts(items, item_ids, cold))
    return vecs


def cold_item_protocol(test: Interactions, main: dict[str, dict], rows: tuple[str, ...], share: float, seed: int,
                       items=None, encode_model: str | None = None, user_chunk: int = 1024, log=print) -> dict:
    """Refit ``rows`` on ``test`` with a seeded share of items withheld; Recall@20 / NDCG@20 on the users
    whose target is withheld. Rows that are not registered, or whose inputs are missing, are reported
    under ``skipped`` with the reason."""
    from interestrec.evaluate.protocol import rank_targets

    cold = choose_cold_items(test.n_items, share, seed)
    data = withhold_items(test, cold)
    out = {"share": share, "seed": seed, "items": int(len(cold)), "users": int((data.target >= 0).sum()),
           "withheld_events": int(len(test.seq_item) - len(data.seq_item)), "models": {}, "skipped": {},
           "protocol": "every train (+valid) interaction of the cold items withheld; users whose test item is cold, "
                       "ranked over all items; rows refit at their validation-tuned params; cold items' text "
                       "from catalogue fields only; graph embeddings not used"}
    if data.artifacts is not None and items is not None:
        try:
            t0 = time.perf_counter()
            vecs = content_only_vectors(data.artifacts, items, data.item_ids, cold, encode_model)
            data = dataclasses.replace(data, extras={**data.extras, "item_vectors": vecs, "no_graph": True})
            log(f"evaluate: cold items: {len(cold)} items re-encoded from content only in {time.perf_counter() - t0:.1f}s")
        except FileNotFoundError as e:
            log(f"evaluate: cold items: no content-only vectors ({e})")
    for name in rows:
        if name not in REGISTRY:
            out["skipped"][name] = "not registered"
            continue
        cls = REGISTRY[name]
        params = main[name]["params"] if name in main else cls.grid[0]
        try:
            t0 = time.perf_counter()
            ranking = rank_targets(cls(**params).fit(data), data, 20, user_chunk)
        except FileNotFoundError as e:
            out["skipped"][name] = f"missing artifacts: {e}"
            continue
        out["models"][name] = {"recall@20": metrics.recall(ranking.rank, 20), "ndcg@20": metrics.ndcg(ranking.rank, 20),
                               "users": int(len(ranking.users)), "baseline": bool(cls.baseline),
                               "params": dict(params), "params_from": "main table" if name in main else "first grid point",
                               "seconds": round(time.perf_counter() - t0, 2)}
        log(f"evaluate: cold items {name}: Recall@20 {out['models'][name]['recall@20']:.4f}")
    out["chance_recall@20"] = 20.0 / max(test.n_items - 1, 1)
    return out


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
