"""The GraphSAGE Ray Train worker: DDP over :func:`~interestrec.graph.train.train_epochs`, resumable, with a
safetensors + json checkpoint every epoch (:mod:`interestrec.train.worker`: model and Adam state as numpy
arrays, never pickle)."""

from __future__ import annotations

from interestrec.graph.train import GraphJob, build_graph_model, make_optimizer, train_epochs
from interestrec.graph.training_graph import graph_for, load_interactions

OPT_PREFIX = "adam"  # the Adam state's key prefix in the checkpoint's safetensors


def train_loop(job: GraphJob) -> None:
    """Ray Train worker: DDP over :func:`train_epochs`, a checkpoint every epoch, resumed from the latest one.

    ``state.json`` also lists ``starts``: the first epoch of every attempt of the run (a resume adds one).
    """
    import ray.train.torch
    import torch

    from interestrec.train import epoch_reporter, resume

    cfg = job.graph
    torch.set_num_threads(max(1, min(cfg.threads, int(cfg.cpus_per_worker) or 1)))
    torch.manual_seed(job.seed)
    data = load_interactions(job.out, job.phase)
    graph = graph_for(data, cfg)
    model = build_graph_model(graph, cfg)  # dummy forward done: lazy / hetero layers are materialised
    opt = make_optimizer(model, cfg)
    attempt = resume(model, opt, opt_prefix=OPT_PREFIX)
    starts = [*attempt.saved.get("starts", []), attempt.start]
    model = ray.train.torch.prepare_model(model, parallel_strategy_kwargs={"find_unused_parameters": True})
    report = epoch_reporter(attempt, model, opt, opt_prefix=OPT_PREFIX, state_extra={"starts": starts})
    train_epochs(model, graph, data, cfg, opt, start_epoch=attempt.start, rank=attempt.rank, world=attempt.world,
                 seed=job.seed, on_epoch=report)
