"""The adaptation training loop, shared by the in-process reference (:func:`fit_local`) and Ray Train.

Under Ray Train (:func:`train_loop`, run by :func:`interestrec.train.fit`) every worker holds the pairs,
takes its own disjoint share of each epoch's seeded permutation (equal sizes, so DDP's collectives match)
and DDP averages the gradients; in-batch negatives are the worker's own batch. Rank 0 reports a
safetensors + json checkpoint every epoch (:mod:`interestrec.train.worker`: the trainable weights, the
optimiser state and the loss curve so far); a restarted worker group resumes from the latest one.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from interestrec.adapt.config import AdaptConfig
from interestrec.train.harness import TrainSpec

OPT_PREFIX = "opt"  # the AdamW state's key prefix in the checkpoint's safetensors


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

    def train_spec(self) -> TrainSpec:
        """Ray Train settings: the config's workers and failures, every checkpoint kept."""
        cfg = self.adapt
        return TrainSpec(label=f"adapt ({self.objective})", progress=f"adapt {self.objective}: epoch",
                         epochs=cfg.schedule(self.objective)[1], num_workers=cfg.num_workers, use_gpu=cfg.use_gpu,
                         cpus_per_worker=cfg.cpus_per_worker, max_failures=cfg.max_failures, keep_checkpoints=None)


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


def build_adapt_model(job: AdaptJob, batches: Batches | None = None):
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
    model = build_adapt_model(job, batches).to(device)
    if job.objective == "projection":
        batches.vectors = batches.vectors.to(device)
    return model, train_epochs(model, batches, job, make_optimizer(model, job))


def train_loop(job: AdaptJob) -> None:
    """Ray Train worker: DDP over :func:`train_epochs`, a checkpoint every epoch, resumed from the latest one.

    The reported metrics also carry the worker's ``pid``.
    """
    import os

    import ray.train.torch
    import torch

    from interestrec.train import epoch_reporter, resume

    if not job.adapt.use_gpu:
        torch.set_num_threads(job.adapt.threads)
    batches = Batches(job)
    model = build_adapt_model(job, batches)
    opt = make_optimizer(model, job)
    attempt = resume(model, opt, opt_prefix=OPT_PREFIX)
    model = ray.train.torch.prepare_model(model)
    if job.objective == "projection":
        batches.vectors = batches.vectors.to(ray.train.torch.get_device())
    report = epoch_reporter(attempt, model, opt, opt_prefix=OPT_PREFIX, metrics_extra={"pid": os.getpid()})
    train_epochs(model, batches, job, opt, start_epoch=attempt.start, rank=attempt.rank, world=attempt.world,
                 on_epoch=report)
