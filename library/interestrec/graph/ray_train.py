"""The GraphSAGE Ray Train worker: DDP over :func:`~interestrec.graph.train.train_epochs`, a safetensors +
json checkpoint every epoch (model and Adam state as numpy arrays, never pickle), resumable."""

from __future__ import annotations

import numpy as np

from interestrec.graph.train import (
    GraphJob,
    build_model,
    graph_for,
    load_interactions,
    make_optimizer,
    model_device,
    train_epochs,
)


def state_arrays(model, opt=None) -> dict[str, np.ndarray]:
    """Model (and Adam) state as numpy arrays, for safetensors (never pickle)."""
    inner = getattr(model, "module", model)
    out = {f"model.{k}": v.detach().cpu().numpy() for k, v in inner.state_dict().items()}
    if opt is not None:
        for i, st in opt.state_dict()["state"].items():
            for k, v in st.items():
                out[f"adam.{i}.{k}"] = v.detach().cpu().numpy().reshape(v.shape) if hasattr(v, "detach") else np.asarray(v)
    return out


def load_state_arrays(model, arrays: dict[str, np.ndarray], opt=None) -> None:
    """Restore what :func:`state_arrays` saved (Adam state only when ``opt`` is given and it was saved)."""
    import torch

    inner = getattr(model, "module", model)
    inner.load_state_dict({k[len("model."):]: torch.as_tensor(v) for k, v in arrays.items() if k.startswith("model.")})
    if opt is not None and any(k.startswith("adam.") for k in arrays):
        sd = opt.state_dict()
        state: dict[int, dict] = {}
        for k, v in arrays.items():
            if k.startswith("adam."):
                _, i, name = k.split(".", 2)
                state.setdefault(int(i), {})[name] = torch.as_tensor(v)
        sd["state"] = state
        opt.load_state_dict(sd)


def train_loop(job: GraphJob) -> None:
    """Ray Train worker: DDP over :func:`train_epochs`, a safetensors + json checkpoint every epoch, resumable."""
    import json
    import os
    import tempfile

    import ray.train
    import ray.train.torch
    import torch

    from interestrec import artifacts

    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    cfg = job.graph
    torch.set_num_threads(max(1, min(cfg.threads, int(cfg.cpus_per_worker) or 1)))
    torch.manual_seed(job.seed)
    data = load_interactions(job.out, job.phase)
    graph = graph_for(data, cfg)
    model = build_model(graph, cfg)  # dummy forward done: lazy / hetero layers are materialised
    opt = make_optimizer(model, cfg)
    start, history, starts = 0, [], []
    ckpt = ray.train.get_checkpoint()
    if ckpt:
        with ckpt.as_directory() as d:
            load_state_arrays(model, artifacts.read_safetensors(os.path.join(d, "model.safetensors")), opt)
            with open(os.path.join(d, "state.json")) as f:
                saved = json.load(f)
            start, history = int(saved["epoch"]) + 1, list(saved.get("curve", []))
            starts = list(saved.get("starts", []))
    starts.append(start)  # the first epoch of every attempt of this run (a resume adds one)
    model = ray.train.torch.prepare_model(model, parallel_strategy_kwargs={"find_unused_parameters": True})

    def report(epoch: int, m: dict) -> None:
        metrics = {**m, "resumed_from": start, "world_size": world, "device": str(model_device(model))}
        history.append(m)
        if rank != 0:
            ray.train.report(metrics)
            return
        with tempfile.TemporaryDirectory() as d:
            artifacts.write_safetensors(os.path.join(d, "model.safetensors"), state_arrays(model, opt))
            # the whole curve travels with the checkpoint (Ray keeps only the last checkpoints' metrics)
            artifacts.write_json(os.path.join(d, "state.json"), {"epoch": epoch, "curve": history, "starts": starts, **metrics})
            ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(d))

    train_epochs(model, graph, data, cfg, opt, start_epoch=start, rank=rank, world=world, seed=job.seed, on_epoch=report)
