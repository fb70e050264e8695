"""Ray Train set-up and failure handling: one ``TorchTrainer`` run of a job, its errors gathered by rank.

A job (``GraphJob``, ``AdaptJob``) is a frozen dataclass that travels to the workers as
``train_loop_config`` and says how it runs through :meth:`TrainJob.train_spec`. :func:`fit` builds the
``ScalingConfig`` / ``RunConfig`` (``FailureConfig``, ``CheckpointConfig``, progress callbacks) from
that spec, runs the trainer and turns any failure into one :class:`~interestrec.train.errors.TrainingError`
whose message names every failed rank's own error.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from interestrec.train.errors import TrainingError


@dataclass(frozen=True)
class TrainSpec:
    """How a job runs on Ray Train.

    Attributes:
        label: names the job in errors (``graph``, ``adapt (projection)``).
        progress: label of the driver's per-epoch progress lines (``graph: epoch``).
        epochs: epochs the run trains (the progress lines' total).
        num_workers / use_gpu / cpus_per_worker: ``ScalingConfig``.
        max_failures: ``FailureConfig.max_failures``: worker-group restarts from the latest checkpoint
            (-1 = unlimited).
        keep_checkpoints: ``CheckpointConfig.num_to_keep`` (``None`` = every checkpoint).
    """

    label: str
    progress: str
    epochs: int
    num_workers: int
    use_gpu: bool
    cpus_per_worker: float
    max_failures: int
    keep_checkpoints: int | None


class TrainJob(Protocol):
    """What :func:`fit` needs of a job besides being picklable: how it runs."""

    def train_spec(self) -> TrainSpec:
        """The job's Ray Train settings."""
        ...


Job = TypeVar("Job", bound=TrainJob)


def run_config(spec: TrainSpec, storage: str, name: str, callbacks: Sequence[Any] = (),
               max_failures: int | None = None):
    """``(ScalingConfig, RunConfig)`` of ``spec`` for the run ``name`` under ``storage`` (passed unchanged).

    Args:
        callbacks: Ray Train ``UserCallback`` instances (``None`` is passed when there are none).
        max_failures: overrides ``spec.max_failures`` when given.
    """
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig

    failures = spec.max_failures if max_failures is None else max_failures
    scaling = ScalingConfig(num_workers=spec.num_workers, use_gpu=spec.use_gpu,
                            resources_per_worker={"CPU": spec.cpus_per_worker})
    run = RunConfig(name=name, storage_path=storage, checkpoint_config=CheckpointConfig(num_to_keep=spec.keep_checkpoints),
                    failure_config=FailureConfig(max_failures=failures), callbacks=list(callbacks) or None)
    return scaling, run


def fit(train_loop: Callable[[Job], None], job: Job, storage: str, name: str, *, callbacks: Sequence[Any] = (),
        max_failures: int | None = None, error: type[TrainingError] = TrainingError):
    """Run ``train_loop(job)`` on every worker with ``TorchTrainer`` and return the ``Result``.

    A run with the same ``name`` under ``storage`` (a local directory or any pyarrow URI such as
    ``s3://bucket/runs``) resumes from its latest checkpoint (the loop reads it with
    ``ray.train.get_checkpoint()``); so does a worker group restarted after a worker dies, up to
    ``max_failures`` times (default: the job's own). Each epoch's report reaches the driver's progress lines.

    Args:
        callbacks: extra Ray Train callbacks, before the progress one.
        error: the :class:`TrainingError` subclass raised (a stage passes its own).

    Raises:
        TrainingError: (``error``) training failed, or finished without a checkpoint; the message
            carries each failed worker's own error.
    """
    from ray.train import TrainingFailedError
    from ray.train.torch import TorchTrainer

    from interestrec import progress

    spec = job.train_spec()
    with progress.ray_train_epochs(spec.progress, spec.epochs) as forward:
        scaling, run = run_config(spec, storage, name, [*callbacks, *forward], max_failures)
        trainer = TorchTrainer(train_loop, train_loop_config=job, scaling_config=scaling, run_config=run)
        try:
            result = trainer.fit()
        except TrainingFailedError as e:
            raise error(failure_message(spec.label, e)) from e
    if result.error is not None:  # defensive: fit() raises on failure
        raise error(failure_message(spec.label, result.error))
    if result.checkpoint is None:
        raise error(f"{spec.label} training under {storage}/{name} finished without a checkpoint")
    return result


def failure_message(label: str, err: BaseException) -> str:
    """One line naming every failed worker's own error (``WorkerGroupError.worker_failures``), by rank.

    Without worker failures it names the controller's failure (``controller_failure``), else ``err`` itself.
    """
    failures = getattr(err, "worker_failures", None) or {}
    if failures:
        lines = [f"rank {rank}: {type(e).__name__}: {e}".strip() for rank, e in sorted(failures.items())]
        return f"{label} training failed on " + "; ".join(lines)
    cause = getattr(err, "controller_failure", None) or err
    return f"{label} training failed: {type(cause).__name__}: {cause}"
