"""The worker side of a resumable Ray Train loop: resume from the latest checkpoint, checkpoint every epoch.

A job's ``train_loop`` builds its data, model and optimiser, then::

    attempt = resume(model, opt, opt_prefix="opt")         # restores weights + optimiser state, if any
    model = ray.train.torch.prepare_model(model)            # DDP
    train_epochs(..., start_epoch=attempt.start, rank=attempt.rank, world=attempt.world,
                 on_epoch=epoch_reporter(attempt, model, opt, opt_prefix="opt"))

Every rank reports each epoch's metrics; rank 0 attaches a checkpoint (:mod:`interestrec.train.checkpoint`)
whose ``state.json`` carries the whole loss curve, since Ray keeps only the last checkpoints' metrics.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from interestrec.train.checkpoint import load_state, read_checkpoint, state_arrays, write_checkpoint


@dataclass
class Attempt:
    """One attempt of a run on this worker (a restart after a failure is a new attempt).

    Attributes:
        rank / world: this worker's rank and the worker count.
        start: the attempt's first epoch (the checkpoint's epoch + 1; 0 without a checkpoint).
        history: the per-epoch metrics so far (the checkpoint's curve, then this attempt's epochs).
        saved: the ``state.json`` resumed from (``{}`` without a checkpoint).
    """

    rank: int
    world: int
    start: int = 0
    history: list[dict] = field(default_factory=list)
    saved: dict = field(default_factory=dict)


def resume(model, opt, *, opt_prefix: str) -> Attempt:
    """This worker's attempt, with ``model`` and ``opt`` restored from ``ray.train.get_checkpoint()`` if any.

    Call before ``prepare_model`` (the weights then reach every rank through DDP's broadcast too).
    """
    import ray.train

    ctx = ray.train.get_context()
    attempt = Attempt(rank=ctx.get_world_rank(), world=ctx.get_world_size())
    ckpt = ray.train.get_checkpoint()
    if ckpt:
        arrays, saved = read_checkpoint(ckpt)
        load_state(model, arrays, opt, opt_prefix=opt_prefix)
        attempt.start, attempt.history, attempt.saved = int(saved["epoch"]) + 1, list(saved["curve"]), saved
    return attempt


def epoch_reporter(attempt: Attempt, model, opt, *, opt_prefix: str, metrics_extra: Mapping[str, Any] | None = None,
                   state_extra: Mapping[str, Any] | None = None) -> Callable[[int, dict], None]:
    """An ``on_epoch(epoch, metrics)`` callback that reports every epoch to Ray Train.

    The reported metrics are the epoch's, then ``resumed_from``, ``world_size``, ``metrics_extra`` and
    ``device``. Rank 0 also writes a checkpoint: :func:`state_arrays` of ``model`` and ``opt`` and a
    ``state.json`` of ``epoch``, ``curve`` (the whole history), ``state_extra`` and the metrics.

    Args:
        model: the prepared (possibly DDP-wrapped) model.
    """
    import ray.train

    def report(epoch: int, m: dict) -> None:
        metrics = {**m, "resumed_from": attempt.start, "world_size": attempt.world, **(metrics_extra or {}),
                   "device": str(next(model.parameters()).device)}
        attempt.history.append(m)
        if attempt.rank != 0:
            ray.train.report(metrics)
            return
        with tempfile.TemporaryDirectory() as d:
            write_checkpoint(d, state_arrays(model, opt, opt_prefix=opt_prefix),
                             {"epoch": epoch, "curve": attempt.history, **(state_extra or {}), **metrics})
            ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(d))

    return report
