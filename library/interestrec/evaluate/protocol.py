"""The evaluation protocol: full ranking over all items, history filtered, chunked scoring with top-k.

A users × items score matrix is never materialised whole: users are scored ``user_chunk`` at a time,
history items are set to ``-inf``, the held-out item's rank is computed exactly and ``torch.topk``
keeps only the top lists needed by the list-level metrics.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from interestrec.evaluate import metrics
from interestrec.evaluate.base import Interactions, Recommender


@dataclass(frozen=True)
class Ranking:
    """Per-user ranks of the held-out item and top-k lists for the users that have one.

    Shapes:
        users: ``(m,)`` user indices; rank: ``(m,)``; topk: ``(m, k_max)``.
    """

    users: np.ndarray
    rank: np.ndarray
    topk: np.ndarray
    skipped_users: int


def target_users(data: Interactions) -> np.ndarray:
    """Indices of the users that have a held-out item, in order. Shapes: ``(m,)``."""
    return np.flatnonzero(data.target >= 0)


def rank_targets(model: Recommender, data: Interactions, k_max: int = 20, user_chunk: int = 1024,
                 users: np.ndarray | None = None) -> Ranking:
    """Score users in chunks, filter their history and rank their held-out item against all items.

    ``users`` (default: every :func:`target_users`) ranks a slice of them, chunked from its start: a shard of
    the sharded ranking (:mod:`interestrec.evaluate.parallel`), which starts its slices at chunk boundaries so
    every chunk, and so every rank and list, equals the one-process ranking's.
    """
    import torch

    users = target_users(data) if users is None else np.asarray(users, dtype=np.int64)
    ranks, tops = [], []
    k = min(k_max, data.n_items)
    for lo in range(0, len(users), user_chunk):
        u = users[lo : lo + user_chunk]
        scores = torch.as_tensor(np.asarray(model.score(u), dtype=np.float32)).clone()
        if scores.shape != (len(u), data.n_items):
            raise ValueError(f"{type(model).__name__}.score returned {tuple(scores.shape)}, expected {(len(u), data.n_items)}")
        hist = data.train[u].tocoo()
        scores[torch.as_tensor(hist.row, dtype=torch.long), torch.as_tensor(hist.col, dtype=torch.long)] = -torch.inf
        scores = torch.nan_to_num(scores, nan=-torch.inf)
        t = torch.as_tensor(data.target[u], dtype=torch.long)
        s_t = scores.gather(1, t[:, None])
        idx = torch.arange(data.n_items)[None, :]
        rank = (scores > s_t).sum(1) + ((scores == s_t) & (idx < t[:, None])).sum(1)
        ranks.append(rank.numpy())
        # top-k, then ordered by (score desc, item index asc) so ties inside the list are deterministic
        vals, top = torch.topk(scores, k, dim=1)
        by_index = torch.argsort(top, dim=1)
        top, vals = top.gather(1, by_index), vals.gather(1, by_index)
        order = torch.sort(vals, dim=1, descending=True, stable=True).indices
        top, vals = top.gather(1, order), vals.gather(1, order)
        top = torch.where(torch.isinf(vals) & (vals < 0), torch.full_like(top, -1), top)
        tops.append(top.numpy())
    rank = np.concatenate(ranks) if ranks else np.zeros(0, np.int64)
    topk = np.concatenate(tops) if tops else np.zeros((0, k), np.int64)
    return Ranking(users=users, rank=rank, topk=topk, skipped_users=int((data.target < 0).sum()))


def concat_rankings(parts: list[Ranking], data: Interactions, k_max: int) -> Ranking:
    """One :class:`Ranking` from shards ranked in user order (the users without a target counted once)."""
    k = min(k_max, data.n_items)
    return Ranking(users=np.concatenate([p.users for p in parts]) if parts else np.zeros(0, np.int64),
                   rank=np.concatenate([p.rank for p in parts]) if parts else np.zeros(0, np.int64),
                   topk=np.concatenate([p.topk for p in parts]) if parts else np.zeros((0, k), np.int64),
                   skipped_users=int((data.target < 0).sum()))


def compute_metrics(r: Ranking, data: Interactions, ks: tuple[int, ...] = (10, 20), item_features: np.ndarray | None = None) -> dict:
    """The table's metrics from a :class:`Ranking`."""
    out: dict[str, float] = {}
    pop = np.asarray((data.train > 0).sum(0)).ravel()
    for k in ks:
        out[f"hr@{k}"] = metrics.hit_rate(r.rank, k)
        out[f"ndcg@{k}"] = metrics.ndcg(r.rank, k)
        out[f"recall@{k}"] = metrics.recall(r.rank, k)
    out["mrr"] = metrics.mrr(r.rank)
    top10 = r.topk[:, :10]
    out["coverage@10"] = metrics.coverage(top10, data.n_items)
    out["novelty@10"] = metrics.novelty(top10, pop, data.n_users)
    if item_features is not None:
        out["diversity@10"] = metrics.intra_list_diversity(top10, item_features)
    out["users"] = int(len(r.users))
    out["users_without_target"] = r.skipped_users
    return out


def evaluate_model(model: Recommender, data: Interactions, ks: tuple[int, ...] = (10, 20), user_chunk: int = 1024,
                   item_features: np.ndarray | None = None) -> dict:
    """Rank and score an already fitted model on ``data``'s targets."""
    return compute_metrics(rank_targets(model, data, max(ks), user_chunk), data, ks, item_features)


def select_params(cls: type[Recommender], valid: Interactions, user_chunk: int = 1024, tune: bool = True,
         log=print, grid: list[dict] | None = None) -> tuple[dict, float, list[dict]]:
    """Pick hyper-parameters on validation NDCG@10; returns ``(best params, best score or -1, tried points)``.

    ``grid`` replaces the row's own ``cls.grid`` (a profile's smaller grid or shorter budget).
    """
    grid = list(grid or cls.grid)
    grid = grid if tune else grid[:1]
    from interestrec import progress

    best, best_params, tried = -1.0, grid[0], []
    if len(grid) > 1:
        bar = progress.Progress(f"evaluate: {cls.name} grid", total=len(grid), unit="point")
        for params in grid:
            m = cls(**params).fit(valid)
            score = evaluate_model(m, valid, (10,), user_chunk)["ndcg@10"]
            tried.append({"params": params, "valid_ndcg@10": round(score, 5)})
            if score > best:
                best, best_params = score, params
            bar.update(note=f"{params}: valid NDCG@10 {score:.4f} (best {best:.4f})")
        bar.close()
        log(f"  {cls.name}: best of {len(grid)} grid points {best_params}: valid NDCG@10 {best:.4f}")
    return best_params, best, tried


def fit_and_rank(cls: type[Recommender], params: dict, test: Interactions, ks: tuple[int, ...] = (10, 20),
                 user_chunk: int = 1024, item_features: np.ndarray | None = None) -> tuple[dict, Ranking]:
    """Fit ``cls(**params)`` on ``test``'s training data; returns its metrics and the per-user ranks."""
    model = cls(**params).fit(test)
    ranking = rank_targets(model, test, max(ks), user_chunk)
    return compute_metrics(ranking, test, ks, item_features), ranking


def tune_and_rank(cls: type[Recommender], valid: Interactions, test: Interactions, ks: tuple[int, ...] = (10, 20),
                  user_chunk: int = 1024, item_features: np.ndarray | None = None, tune: bool = True,
                  log=print, grid: list[dict] | None = None) -> tuple[dict, Ranking]:
    """Pick hyper-parameters on validation (NDCG@10), refit on train+valid; test metrics and per-user ranks.

    ``grid``: as in :func:`select_params` (``None`` = the row's own).
    """
    t0 = time.perf_counter()
    best_params, best, tried = select_params(cls, valid, user_chunk, tune, log, grid)
    result, ranking = fit_and_rank(cls, best_params, test, ks, user_chunk, item_features)
    result.update({"baseline": bool(cls.baseline), "params": dict(best_params), "tuning": tried,
                   "seconds": round(time.perf_counter() - t0, 2)})
    if best >= 0:
        result["valid_ndcg@10"] = best
    return result, ranking


def tune_and_evaluate(cls: type[Recommender], valid: Interactions, test: Interactions, ks: tuple[int, ...] = (10, 20),
                      user_chunk: int = 1024, item_features: np.ndarray | None = None, tune: bool = True,
                      log=print) -> dict:
    """:func:`tune_and_rank` without the ranks."""
    return tune_and_rank(cls, valid, test, ks, user_chunk, item_features, tune, log)[0]
