"""Where the evaluate stage's rows run: Ray (Tune trials, Ray tasks) or the driver (the reference).

:func:`runner` builds a :class:`RowRunner` from the stage config. Both kinds answer the same two calls:
``select`` (validation selection of every row's grid, :class:`~interestrec.evaluate.trials.Selection` per
row) and ``submit`` (refits ranked on a phase, :class:`~interestrec.evaluate.parallel.Fitted` per result row,
collected with ``.result()`` so driver-side work can overlap). The local kind is the plain reference; the
table is the same either way.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from interestrec.evaluate.base import REGISTRY, Interactions
from interestrec.evaluate.config import EvaluateConfig
from interestrec.evaluate.parallel import Fit, Fitted, Resources, run_local, submit
from interestrec.evaluate.trials import Selection, TrialSettings, select_all


@dataclass(frozen=True)
class _Later:
    """Fits run when ``result`` is first asked for (the local kind: same order as the reference)."""

    run: Callable[[], dict[str, Fitted]]

    def result(self) -> dict[str, Fitted]:
        return self.run()


def cluster_workers(cpus_per_trial: float) -> int:
    """Trials the connected Ray cluster runs at once: its CPUs ÷ ``cpus_per_trial`` (at least 1)."""
    import ray

    return max(1, int(float(ray.cluster_resources().get("CPU", 1.0)) // cpus_per_trial))


@dataclass(frozen=True)
class RowRunner:
    """Selection and refits of the table's rows.

    Attributes:
        kind: ``ray`` or ``local``. workers: trials / fits at once and ranking shards per model (ray).
        cfg: the stage config. storage: Tune's storage path (``evaluate/tune``). callbacks: Ray Tune callbacks.
    """

    kind: str
    workers: int
    cfg: EvaluateConfig
    storage: str
    log: Callable[[str], None] = print
    callbacks: tuple = ()

    def select(self, grids: Mapping[str, list[dict]], valid: Interactions) -> dict[str, Selection]:
        """Each row's chosen point on validation (``grids``: row → points; one point = not tuned)."""
        if self.kind == "ray":
            c = self.cfg
            s = TrialSettings(self.workers, c.cpus_per_trial, c.gpus_per_trial, c.early_stop, c.early_stop_grace,
                              c.early_stop_reduction, c.user_chunk, self.storage, tuple(self.callbacks))
            return select_all(grids, valid, s, self.log)
        return {row: select_local(row, grid, valid, self.cfg.user_chunk, self.log) for row, grid in grids.items()}

    def submit(self, fits: list[Fit], data: Interactions, k_max: int):
        """Start ``fits`` on ``data``; ``.result()`` gives result row → :class:`Fitted`."""
        if self.kind == "ray":
            c = self.cfg
            return submit(fits, data, k_max, c.user_chunk, Resources(self.workers, c.cpus_per_trial, c.gpus_per_trial))
        return _Later(lambda: run_local(fits, data, k_max, self.cfg.user_chunk))

    def run(self, fits: list[Fit], data: Interactions, k_max: int) -> dict[str, Fitted]:
        """:meth:`submit` and wait."""
        return self.submit(fits, data, k_max).result()


def select_local(row: str, grid: list[dict], valid: Interactions, user_chunk: int,
                 log: Callable[[str], None] = print) -> Selection:
    """The reference selection of one row (:func:`~interestrec.evaluate.protocol.select_params`)."""
    from interestrec.evaluate.parallel import upstream_missing
    from interestrec.evaluate.protocol import select_params

    try:
        params, score, tried = select_params(REGISTRY[row], valid, user_chunk, True, log, list(grid))
    except FileNotFoundError as e:
        if not upstream_missing(e):
            raise
        return Selection(dict(grid[0]), -1.0, [], str(e))
    return Selection(dict(params), score, tried)


def runner(cfg: EvaluateConfig, storage: str, log: Callable[[str], None] = print, callbacks: tuple = ()) -> RowRunner:
    """The stage's :class:`RowRunner`: ``cfg.executor``, ``cfg.workers`` (0 = as the cluster allows); ``callbacks``
    go to Ray Tune."""
    if cfg.executor == "local":
        return RowRunner("local", 1, cfg, storage, log)
    return RowRunner("ray", cfg.workers or cluster_workers(cfg.cpus_per_trial), cfg, storage, log, tuple(callbacks))


__all__ = ["Fit", "Fitted", "RowRunner", "Selection", "cluster_workers", "runner", "select_local"]
