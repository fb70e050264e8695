"""One Ray Train harness for the stages that train a model (``graph``, ``adapt``).

- :mod:`~interestrec.train.harness`: :class:`TrainSpec` / :class:`TrainJob` and :func:`fit` (the
  ``TorchTrainer`` with scaling, failure and checkpoint settings; every failed rank's error in one message);
- :mod:`~interestrec.train.storage`: the run's ``storage_path`` (a local one refused on a multi-node
  cluster) and :func:`remove_run`;
- :mod:`~interestrec.train.naming`: run names keyed by input and config hashes;
- :mod:`~interestrec.train.checkpoint`: model / optimiser state ↔ safetensors + ``state.json``, no pickle;
- :mod:`~interestrec.train.worker`: resume and per-epoch checkpoints inside a worker's loop.

Nothing here imports a stage package: the stages import this.
"""

from __future__ import annotations

from interestrec.train.checkpoint import (
    MODEL_FILE,
    STATE_FILE,
    load_state,
    read_checkpoint,
    read_state,
    state_arrays,
    write_checkpoint,
)
from interestrec.train.errors import StorageError, TrainingError
from interestrec.train.harness import TrainJob, TrainSpec, failure_message, fit, run_config
from interestrec.train.naming import content_key, directory_key, run_name
from interestrec.train.storage import alive_nodes, cluster_nodes, remove_run, resolve_storage
from interestrec.train.worker import Attempt, epoch_reporter, resume

__all__ = [
    "MODEL_FILE",
    "STATE_FILE",
    "Attempt",
    "StorageError",
    "TrainJob",
    "TrainSpec",
    "TrainingError",
    "alive_nodes",
    "cluster_nodes",
    "content_key",
    "directory_key",
    "epoch_reporter",
    "failure_message",
    "fit",
    "load_state",
    "read_checkpoint",
    "read_state",
    "remove_run",
    "resolve_storage",
    "resume",
    "run_config",
    "run_name",
    "state_arrays",
    "write_checkpoint",
]
