"""Every row's grid points as Ray Tune trials: validation selection spread over the cluster.

One :class:`ray.tune.Tuner` runs the grid points of every row that has more than one (a row with one point is
not fitted on validation, as in the one-process reference :func:`interestrec.evaluate.protocol.select_params`).
The validation interactions go to the object store once (``tune.with_parameters``). Each trial fits
``row(**params)`` on validation and reports validation NDCG@10; rows trained in epochs report after every
epoch, and :class:`RowScheduler` gives each such row its own ASHA, so a row's points only compete with each
other. Selection is the reference's: the first best point in grid order, on the last reported score. Trial
results (params, validation NDCG@10 per epoch, seconds) stay under ``evaluate/tune/`` on the run's storage.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from interestrec import artifacts
from interestrec.evaluate.base import REGISTRY, Interactions
from interestrec.evaluate.parallel import absolute

METRIC = "valid_ndcg_at_10"  # what trials report (a name MLflow takes); records say ``valid_ndcg@10``
RECORD = "valid_ndcg@10"
RUN_NAME = "grid"
TRIALS_FILE = "trials.json"


@dataclass(frozen=True)
class TrialSettings:
    """How the trials run.

    Attributes:
        workers: trials at once. cpus / gpus: resources of each trial.
        early_stop: ASHA for rows trained in epochs; grace (epochs at least) and reduction: its settings.
        user_chunk: users scored per chunk. storage: Tune's ``storage_path`` (``evaluate/tune``).
        callbacks: Ray Tune callbacks (experiment tracking, :func:`interestrec.tracking.tune_callbacks`).
    """

    workers: int
    cpus: float = 1.0
    gpus: float = 0.0
    early_stop: bool = True
    grace: int = 5
    reduction: int = 3
    user_chunk: int = 1024
    storage: str = "tune"
    callbacks: tuple = ()


@dataclass(frozen=True)
class Selection:
    """A row's chosen grid point: ``params``, its validation NDCG@10 ``score`` (-1 when not tuned), ``tried``
    (one record per point, in grid order) and ``missing`` (an upstream artifact the row needs is absent)."""

    params: dict
    score: float
    tried: list[dict]
    missing: str | None = None


def epoch_budget(row: str, params: Mapping) -> int | None:
    """The epoch budget of ``row`` at ``params`` (``None`` for rows not trained in epochs)."""
    cls = REGISTRY[row]
    if not cls.epoch_param:
        return None
    model = cls(**params)
    value = params.get(cls.epoch_param, getattr(getattr(model, "cfg", None), cls.epoch_param, None))
    return int(value) if value is not None else None


def _scheduler(grids: Mapping[str, list[dict]], s: TrialSettings):
    """A row-dispatching scheduler with one ASHA per row trained in epochs (when ``s.early_stop``)."""
    from ray.tune.schedulers import AsyncHyperBandScheduler

    per_row = {}
    for row, grid in grids.items():
        budget = max((epoch_budget(row, p) or 0) for p in grid)
        if s.early_stop and budget > s.grace:
            per_row[row] = AsyncHyperBandScheduler(time_attr="epoch", metric=METRIC, mode="max", max_t=budget,
                                                   grace_period=s.grace, reduction_factor=s.reduction)
    return row_scheduler(per_row)


def row_scheduler(per_row: Mapping):
    """A FIFO trial scheduler that hands the results of a row with its own scheduler (``per_row[row]``, an ASHA)
    to that one only, so a row's grid points compete only with each other."""
    from ray.tune.schedulers import FIFOScheduler

    class RowScheduler(FIFOScheduler):
        def __init__(self) -> None:
            super().__init__()
            self.per_row = dict(per_row)

        def _of(self, trial):
            return self.per_row.get(trial.config["point"]["row"])

        def on_trial_add(self, tune_controller, trial) -> None:
            if (s := self._of(trial)) is not None:
                s.on_trial_add(tune_controller, trial)

        def on_trial_result(self, tune_controller, trial, result: dict) -> str:
            s = self._of(trial)
            return s.on_trial_result(tune_controller, trial, result) if s is not None else self.CONTINUE

        def on_trial_complete(self, tune_controller, trial, result: dict) -> None:
            if (s := self._of(trial)) is not None and trial.trial_id in s._trial_info:
                s.on_trial_complete(tune_controller, trial, result)

        def on_trial_remove(self, tune_controller, trial) -> None:
            if (s := self._of(trial)) is not None and trial.trial_id in s._trial_info:
                s.on_trial_remove(tune_controller, trial)

    return RowScheduler()


def grid_trial(config: dict, valid: Interactions) -> None:
    """One trial: fit ``config["point"]`` on validation, report validation NDCG@10 (each epoch when early
    stopping; the last epoch's report comes after ``fit``, with the model in its final state)."""
    import ray
    from ray import tune

    from interestrec.evaluate.models import registered
    from interestrec.evaluate.parallel import upstream_missing
    from interestrec.evaluate.protocol import evaluate_model

    point, chunk = config["point"], int(config["user_chunk"])
    node = ray.get_runtime_context().get_node_id()
    cls = registered()[point["row"]]
    budget = epoch_budget(point["row"], point["params"]) or 1
    t0 = time.perf_counter()
    model = cls(**point["params"])

    def score() -> float:
        return float(evaluate_model(model, valid, (10,), chunk)["ndcg@10"])

    if config["early_stop"] and cls.epoch_param:
        def report_epoch(epoch: int) -> None:
            if epoch < budget:
                tune.report({METRIC: score(), "epoch": epoch, "seconds": time.perf_counter() - t0, "node": node})
        model.epoch_hook = report_epoch
    try:
        model.fit(valid)
    except FileNotFoundError as e:
        if not upstream_missing(e):
            raise
        tune.report({"missing": str(e), "epoch": budget, "seconds": time.perf_counter() - t0, "node": node})
        return
    tune.report({METRIC: score(), "epoch": budget, "seconds": time.perf_counter() - t0, "node": node})


def select_all(grids: Mapping[str, list[dict]], valid: Interactions, s: TrialSettings,
               log: Callable[[str], None] = print) -> dict[str, Selection]:
    """Validation selection of every row in ``grids`` (row → its grid points) as Ray Tune trials.

    Rows with one point are not tried (their ``Selection`` has score -1 and no records), as in the reference.

    Raises:
        ValueError: a grid point's params are invalid (before any trial starts; named).
        RuntimeError: a trial failed; the message names the row, the point and the trial's error.
    """
    from ray import tune

    from interestrec.train import remove_run

    out = {row: Selection(dict(grid[0]), -1.0, []) for row, grid in grids.items() if len(grid) == 1}
    tuned = {row: list(grid) for row, grid in grids.items() if len(grid) > 1}
    if not tuned:
        return out
    points = [{"row": row, "index": i, "params": dict(p)} for row, grid in tuned.items() for i, p in enumerate(grid)]
    for p in points:  # bad params stop here, named, before any trial starts
        try:
            REGISTRY[p["row"]](**p["params"])
        except (TypeError, ValueError) as e:
            raise ValueError(f"evaluate: grid point {p['row']} {p['params']}: {e}") from e
    # rows trained in epochs (the longest trials) first, so the last trials to finish are short ones
    points.sort(key=lambda p: epoch_budget(p["row"], p["params"]) is None)
    storage = os.path.abspath(s.storage) if artifacts.is_local(s.storage) else s.storage
    remove_run(storage, RUN_NAME)
    valid = absolute(valid)  # trials run in their own working directory
    trainable = tune.with_resources(tune.with_parameters(grid_trial, valid=valid), {"cpu": s.cpus, "gpu": s.gpus})
    tuner = tune.Tuner(
        trainable,
        param_space={"point": tune.grid_search(points), "early_stop": s.early_stop, "user_chunk": s.user_chunk},
        tune_config=tune.TuneConfig(scheduler=_scheduler(tuned, s), max_concurrent_trials=max(1, s.workers),
                                    reuse_actors=True),
        run_config=tune.RunConfig(name=RUN_NAME, storage_path=storage, verbose=0, callbacks=list(s.callbacks) or None),
    )
    log(f"evaluate: {len(points)} grid points of {len(tuned)} rows as Ray Tune trials, {max(1, s.workers)} at once")
    grid = tuner.fit()
    records: dict[str, dict[int, dict]] = {row: {} for row in tuned}
    for r in grid:
        point = r.config["point"]
        if r.error is not None:
            raise RuntimeError(f"evaluate: trial {point['row']} {point['params']} failed: {r.error}")
        records[point["row"]][point["index"]] = _record(point, r)
    artifacts.write_json(artifacts.join(storage, TRIALS_FILE),
                         {row: [records[row][i] for i in sorted(records[row])] for row in tuned})
    for row, grid_points in tuned.items():
        out[row] = _select(row, grid_points, records[row], log)
    return out


def _record(point: dict, result) -> dict:
    """One trial's record: params, last validation NDCG@10, epochs run, early stop, the curve and seconds."""
    m = result.metrics or {}
    df = result.metrics_dataframe
    curve = []
    if df is not None and METRIC in df:
        curve = [{"epoch": int(e), RECORD: round(float(v), 5)} for e, v in zip(df["epoch"], df[METRIC]) if v == v]
    budget = epoch_budget(point["row"], point["params"])
    rec = {"params": point["params"], RECORD: round(float(m[METRIC]), 5) if METRIC in m else None,
           "score": float(m[METRIC]) if METRIC in m else None, "seconds": round(float(m.get("seconds", 0.0)), 2),
           "node": m.get("node"), "missing": m.get("missing")}
    if budget is not None:
        rec.update({"epochs": int(m.get("epoch", 0)), "stopped_early": int(m.get("epoch", 0)) < budget,
                    "curve": curve})
    return rec


def _select(row: str, grid: list[dict], records: dict[int, dict], log: Callable[[str], None]) -> Selection:
    """The first best point in grid order (strictly greater replaces), as the reference picks."""
    tried = [{k: v for k, v in records[i].items() if k not in ("score", "missing")} for i in range(len(grid))]
    missing = next((records[i]["missing"] for i in range(len(grid)) if records[i].get("missing")), None)
    if missing:
        return Selection(dict(grid[0]), -1.0, [], missing)
    best, best_params = -1.0, dict(grid[0])
    for i, params in enumerate(grid):
        if records[i]["score"] > best:
            best, best_params = records[i]["score"], dict(params)
    stopped = sum(1 for t in tried if t.get("stopped_early"))
    log(f"  {row}: best of {len(grid)} grid points {best_params}: valid NDCG@10 {best:.4f}"
        + (f" ({stopped} stopped early)" if stopped else ""))
    return Selection(best_params, best, tried)
