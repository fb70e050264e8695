"""Refits and test ranking as Ray tasks: rows fitted side by side, each model ranked in user shards.

A :class:`Fit` names a result row, the registered row it fits and its params. :func:`submit` starts every fit
as a Ray task (at most ``workers`` at once; the interactions go to the object store once), and as each model
comes back into the object store it is ranked by ``shards`` tasks, each scoring a contiguous slice of the
test users that starts on a ``user_chunk`` boundary, so every chunk — and so every rank and top-k list — is
the one the one-process :func:`interestrec.evaluate.protocol.rank_targets` computes. Each shard task reads
the fitted model once. Metrics are computed in the driver from the joined ranking.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from interestrec.evaluate.base import Interactions, Recommender
from interestrec.evaluate.protocol import Ranking, concat_rankings, rank_targets, target_users


@dataclass(frozen=True)
class Fit:
    """One refit: result row ``name``, fitting registered row ``row`` at ``params``."""

    name: str
    row: str
    params: dict


@dataclass(frozen=True)
class Resources:
    """``workers`` fits at once and ranking shards per model; ``cpus`` / ``gpus`` of each task."""

    workers: int
    cpus: float = 1.0
    gpus: float = 0.0


@dataclass(frozen=True)
class Fitted:
    """A refit's outcome: its ``ranking`` and compute ``seconds`` (fit plus every shard), or ``missing``: the
    upstream artifact the row needs is absent (the row is skipped)."""

    ranking: Ranking | None
    seconds: float
    missing: str | None = None


def shard_users(users: np.ndarray, shards: int, user_chunk: int) -> list[np.ndarray]:
    """``users`` split into at most ``shards`` contiguous slices, each starting on a ``user_chunk`` boundary.

    Shapes:
        users: ``(m,)``; returns slices whose concatenation is ``users``.
    """
    chunks = -(-len(users) // user_chunk) if len(users) else 0
    per = -(-chunks // max(1, shards)) if chunks else 0
    return [users[lo * user_chunk:(lo + per) * user_chunk] for lo in range(0, chunks, per)] if chunks else []


def upstream_missing(e: FileNotFoundError) -> bool:
    """True when a row failed because an upstream stage's output is absent (the row is skipped); an artifact
    that is there but malformed is an error."""
    from interestrec.recommend.errors import ArtifactError, MissingArtifactError

    return not isinstance(e, ArtifactError) or isinstance(e, MissingArtifactError)


def fit_model(row: str, params: dict, data: Interactions) -> tuple[Recommender | None, float, str | None]:
    """``row(**params)`` fitted on ``data``: ``(model, seconds, None)``, or ``(None, seconds, why)`` when an
    upstream artifact the row reads is absent."""
    from interestrec.evaluate.models import registered

    t0 = time.perf_counter()
    try:
        model = registered()[row](**params).fit(data)
    except FileNotFoundError as e:
        if not upstream_missing(e):
            raise
        return None, time.perf_counter() - t0, str(e)
    return model, time.perf_counter() - t0, None


def rank_shard(model: Recommender, data: Interactions, users: np.ndarray, k_max: int,
               user_chunk: int) -> tuple[Ranking, float]:
    """One shard's ranking and its seconds."""
    t0 = time.perf_counter()
    return rank_targets(model, data, k_max, user_chunk, users), time.perf_counter() - t0


def absolute(data: Interactions) -> Interactions:
    """``data`` with a local ``artifacts`` directory made absolute (tasks and trials run in other directories)."""
    import dataclasses
    import os

    from interestrec import artifacts

    if data.artifacts and artifacts.is_local(data.artifacts):
        return dataclasses.replace(data, artifacts=os.path.abspath(data.artifacts))
    return data


def run_local(fits: list[Fit], data: Interactions, k_max: int, user_chunk: int = 1024) -> dict[str, Fitted]:
    """The reference: every fit and ranking in this process, one after another."""
    out = {}
    for f in fits:
        model, seconds, missing = fit_model(f.row, dict(f.params), data)
        if missing:
            out[f.name] = Fitted(None, seconds, missing)
            continue
        ranking, rank_seconds = rank_shard(model, data, target_users(data), k_max, user_chunk)
        out[f.name] = Fitted(ranking, seconds + rank_seconds)
    return out


class Pending:
    """Refits started by :func:`submit`; :meth:`result` waits for them (driver-side work can run meanwhile)."""

    def __init__(self, fits: list[Fit], data: Interactions, k_max: int, user_chunk: int, res: Resources) -> None:
        import ray

        self.fits, self.k_max, self.user_chunk, self.res = list(fits), k_max, user_chunk, res
        self.data = data = absolute(data)
        self.data_ref = ray.put(data)
        opts = {"num_cpus": res.cpus, "num_gpus": res.gpus}
        self._fit = ray.remote(fit_model).options(num_returns=3, **opts)
        self._rank = ray.remote(rank_shard).options(num_returns=2, **opts)
        self._queue = list(self.fits)
        self._running: dict = {}  # model ref -> (fit, seconds ref, missing ref)
        self._fill()

    def _fill(self) -> None:
        while self._queue and len(self._running) < max(1, self.res.workers):
            f = self._queue.pop(0)
            model, seconds, missing = self._fit.remote(f.row, dict(f.params), self.data_ref)
            self._running[model] = (f, seconds, missing)

    def result(self) -> dict[str, Fitted]:
        """Every refit's :class:`Fitted`, by result row name (a task's error is raised here)."""
        import ray

        shards = shard_users(target_users(self.data), self.res.workers, self.user_chunk)
        ranking_refs: dict[str, tuple[list, list, float]] = {}
        out: dict[str, Fitted] = {}
        while self._running:
            done, _ = ray.wait(list(self._running), num_returns=1)
            f, seconds_ref, missing_ref = self._running.pop(done[0])
            seconds, missing = ray.get([seconds_ref, missing_ref])
            if missing:
                out[f.name] = Fitted(None, seconds, missing)
            else:
                refs = [self._rank.remote(done[0], self.data_ref, u, self.k_max, self.user_chunk) for u in shards]
                ranking_refs[f.name] = ([r[0] for r in refs], [r[1] for r in refs], seconds)
            self._fill()
        for name, (parts, secs, fit_seconds) in ranking_refs.items():
            ranking = concat_rankings(ray.get(parts), self.data, self.k_max)
            out[name] = Fitted(ranking, fit_seconds + float(sum(ray.get(secs))))
        return out


def submit(fits: list[Fit], data: Interactions, k_max: int, user_chunk: int, res: Resources) -> Pending:
    """Start ``fits`` on ``data`` as Ray tasks; returns a :class:`Pending` (call ``.result()``)."""
    return Pending(fits, data, k_max, user_chunk, res)


def rank_sharded(model: Recommender, data: Interactions, k_max: int = 20, user_chunk: int = 1024,
                 shards: int = 2, cpus: float = 1.0) -> Ranking:
    """:func:`~interestrec.evaluate.protocol.rank_targets` of an already fitted ``model`` in ``shards`` Ray
    tasks (the model goes to the object store once); equal to the one-process ranking."""
    import ray

    rank = ray.remote(rank_shard).options(num_returns=2, num_cpus=cpus)
    model_ref, data_ref = ray.put(model), ray.put(absolute(data))
    refs = [rank.remote(model_ref, data_ref, u, k_max, user_chunk)[0]
            for u in shard_users(target_users(data), shards, user_chunk)]
    return concat_rankings(ray.get(refs), data, k_max)
