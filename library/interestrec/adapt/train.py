"""The adaptation training loop, shared by the in-process reference (:func:`fit_local`) and Ray Train.

Under Ray Train (:func:`train_loop`) every worker holds the pairs, takes its own disjoint share of each
epoch's seeded permutation (equal sizes, so DDP's collectives match) and DDP averages the gradients;
in-batch negatives are the worker's own batch. Rank 0 reports a safetensors + json checkpoint every
epoch (the trainable weights, the optimiser state and the loss curve so far); a restarted worker group
resumes from the latest one.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from interestrec.adapt.config import AdaptConfig


@dataclass(frozen=True)
class AdaptJob:
    """Everything a Ray Train worker needs; passed itself as ``train_loop_config``.

    Attributes:
        adapt: the stage config. objective: what this run trains (``contrastive`` or ``projection``).
        pairs_path: parquet of :func:`interestrec.adapt.pairs.to_table`.
        items_path: parquet ``item_id, text`` (+ ``vector``: frozen vectors, for the projection).
        model_path: directory of the base transformer.
    """

    adapt: AdaptConfig
    objective: str
    pairs_path: str
    items_path: str
    model_path: str


class Batches:
    """Turns a slice of pair indices into the model's inputs (token ids or item rows)."""

    def __init__(self, job: AdaptJob):
        from interestrec import artifacts
        from interestrec.adapt.pairs import anchor_text, from_table

        cfg = job.adapt
        self.objective = job.objective
        pairs = from_table(artifacts.read_parquet(job.pairs_path))
        items = artifacts.read_parquet(job.items_path)
        ids = items["item_id"].to_numpy().astype(np.int64)
        self.n = len(pairs)
        row = {int(i): r for r, i in enumerate(ids)}
        self.positive_row = np.array([row[int(i)] for i in pairs.positive], np.int64)
        self.anchor_row = np.where(pairs.anchor >= 0, np.vectorize(lambda i: row.get(int(i), -1))(pairs.anchor), -1)
        if self.objective == "projection":
            import torch

            from interestrec.artifacts import arrow_to_vectors

            self.vectors = torch.as_tensor(np.array(arrow_to_vectors(items["vector"])))
            return
        from interestrec.encode.encoder import load_tokenizer, token_ids

        tok = load_tokenizer(job.model_path)
        self.pad = tok.pad_token_id or 0
        texts = items["text"].to_pylist()
        text_of = dict(zip(ids.tolist(), texts))
        self.item_ids = token_ids(tok, texts, cfg.max_tokens)
        self.anchor_ids = token_ids(tok, [anchor_text(a, text_of) for a in pairs.anchor], cfg.max_tokens)

    def inputs(self, sel: np.ndarray) -> tuple:
        """Model inputs of pairs ``sel`` (anchors first, then positives, as one batch for the transformer)."""
        import torch

        from interestrec.adapt.model import pad_ids

        if self.objective == "projection":
            return (self.vectors, torch.as_tensor(self.anchor_row[sel]), torch.as_tensor(self.positive_row[sel]))
        ids = [self.anchor_ids[i] for i in sel] + [self.item_ids[i] for i in self.positive_row[sel]]
        return pad_ids(ids, self.pad)


def build_model(job: AdaptJob, batches: Batches | None = None):
    """The model this job trains, freshly initialised from ``job.adapt.seed``."""
    import torch

    from interestrec.adapt.model import Projection, TextTower, load_transformer

    cfg = job.adapt
    torch.manual_seed(cfg.seed)
    if job.objective == "projection":
        dim = int(batches.vectors.shape[1]) if batches is not None else 384
        return Projection(dim, cfg.hidden)
    return TextTower(load_transformer(job.model_path, cfg.lora_r, cfg.lora_alpha, cfg.lora_dropout, cfg.seed,
                                      cfg.lora_layers))


def pair_loss(model, inputs: tuple, objective: str, temperature: float):
    """InfoNCE of one batch (``model`` may be DDP-wrapped: exactly one forward call per step)."""
    from interestrec.adapt.model import info_nce

    if objective == "projection":
        a, p = model(*inputs)
    else:
        emb = model(*inputs)
        a, p = emb[: len(emb) // 2], emb[len(emb) // 2 :]
    return info_nce(a, p, temperature)


def make_optimizer(model, job: AdaptJob):
    """AdamW over the trainable parameters."""
    import torch

    lr = job.adapt.schedule(job.objective)[3]
    return torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)


def train_epochs(model, batches: Batches, job: AdaptJob, opt, *, start_epoch: int = 0, rank: int = 0, world: int = 1,
                 on_epoch: Callable[[int, dict], None] | None = None) -> list[dict]:
    """Run epochs ``start_epoch .. epochs - 1`` (of the job's objective); ``on_epoch(epoch, metrics)`` after each."""
    cfg = job.adapt
    _, epochs, batch_size, _ = cfg.schedule(job.objective)
    if batches.n < 2 * world:
        raise ValueError(f"adapt: {batches.n} training pairs cannot feed {world} worker(s) (need >= 2 each)")
    from interestrec import progress

    device = next(model.parameters()).device
    curve = []
    bar = progress.Progress(f"adapt {job.objective}: epoch", total=epochs - start_epoch, unit="epoch")
    for epoch in range(start_epoch, epochs):
        t0 = time.perf_counter()
        model.train()
        order = np.random.default_rng([cfg.seed, epoch]).permutation(batches.n)
        mine = order[rank::world][: batches.n // world]
        losses = []
        for lo in range(0, len(mine), batch_size):
            sel = mine[lo : lo + batch_size]
            if len(sel) < 2:  # same size on every rank, so every rank skips it
                continue
            inputs = tuple(x.to(device) for x in batches.inputs(sel))
            loss = pair_loss(model, inputs, job.objective, cfg.temperature)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
        m = {"epoch": epoch, "loss": float(np.mean(losses)), "first_batch_loss": losses[0],
             "seconds": time.perf_counter() - t0, "pairs": int(len(mine))}
        curve.append(m)
        bar.update(note=f"loss {m['loss']:.4f}")
        if on_epoch:
            on_epoch(epoch, m)
    bar.close()
    return curve


def optimizer_arrays(opt) -> dict[str, np.ndarray]:
    """AdamW state as numpy arrays (``opt.<param>.<name>``), for safetensors."""
    out = {}
    for i, st in opt.state_dict()["state"].items():
        for k, v in st.items():
            out[f"opt.{i}.{k}"] = v.detach().cpu().numpy() if hasattr(v, "detach") else np.asarray(v)
    return out


def load_optimizer_arrays(opt, arrays: dict[str, np.ndarray]) -> None:
    """Restore :func:`optimizer_arrays`."""
    import torch

    sd = opt.state_dict()
    state: dict[int, dict] = {}
    for k, v in arrays.items():
        if k.startswith("opt."):
            _, i, name = k.split(".", 2)
            state.setdefault(int(i), {})[name] = torch.as_tensor(v)
    sd["state"] = state
    opt.load_state_dict(sd)


def trainable_arrays(model) -> dict[str, np.ndarray]:
    """The weights a checkpoint holds: every parameter of the projection, the trainable ones of a tower."""
    inner = getattr(model, "module", model)
    if hasattr(inner, "trainable_state"):
        return {f"model.{k}": v.cpu().numpy() for k, v in inner.trainable_state().items()}
    return {f"model.{k}": v.detach().cpu().numpy() for k, v in inner.state_dict().items()}


def load_trainable_arrays(model, arrays: dict[str, np.ndarray]) -> None:
    """Restore :func:`trainable_arrays`."""
    import torch

    inner = getattr(model, "module", model)
    state = {k[len("model."):]: v for k, v in arrays.items() if k.startswith("model.")}
    if hasattr(inner, "load_trainable_state"):
        inner.load_trainable_state(state)
    else:
        inner.load_state_dict({k: torch.as_tensor(v) for k, v in state.items()})


def fit_local(job: AdaptJob, device: str = "cpu"):
    """The in-process reference: the same model, batches and loop as :func:`train_loop`, no Ray.

    Args:
        device: where the model trains (``cpu`` or ``cuda``).

    Returns:
        ``(model, curve)``.
    """
    import torch

    torch.set_num_threads(job.adapt.threads)
    batches = Batches(job)
    model = build_model(job, batches).to(device)
    if job.objective == "projection":
        batches.vectors = batches.vectors.to(device)
    return model, train_epochs(model, batches, job, make_optimizer(model, job))


def train_loop(job: AdaptJob) -> None:
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
    if not job.adapt.use_gpu:
        torch.set_num_threads(job.adapt.threads)
    batches = Batches(job)
    model = build_model(job, batches)
    opt = make_optimizer(model, job)
    start, history = 0, []
    ckpt = ray.train.get_checkpoint()
    if ckpt:
        with ckpt.as_directory() as d:
            arrays = artifacts.read_safetensors(os.path.join(d, "model.safetensors"))
            load_trainable_arrays(model, arrays)
            load_optimizer_arrays(opt, arrays)
            with open(os.path.join(d, "state.json")) as f:
                saved = json.load(f)
        start, history = int(saved["epoch"]) + 1, list(saved["curve"])
    model = ray.train.torch.prepare_model(model)
    if job.objective == "projection":
        batches.vectors = batches.vectors.to(ray.train.torch.get_device())

    def report(epoch: int, m: dict) -> None:
        metrics = {**m, "resumed_from": start, "world_size": world, "pid": os.getpid(),
                   "device": str(next(model.parameters()).device)}
        history.append(m)
        if rank != 0:
            ray.train.report(metrics)
            return
        with tempfile.TemporaryDirectory() as d:
            artifacts.write_safetensors(os.path.join(d, "model.safetensors"), {**trainable_arrays(model),
                                                                               **optimizer_arrays(opt)})
            artifacts.write_json(os.path.join(d, "state.json"), {"epoch": epoch, "curve": history, **metrics})
            ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(d))

    train_epochs(model, batches, job, opt, start_epoch=start, rank=rank, world=world, on_epoch=report)
