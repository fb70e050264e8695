"""The GraphSAGE training loop, shared by the in-process reference (:func:`fit_local`) and Ray Train.

Full-graph message passing over the training interactions; each step supervises a batch of train
edges that are *removed from the message-passing graph for that step* (no target leakage), with BPR
over uniformly sampled negative items (+ APR when enabled). Under Ray Train every worker holds the
graph and samples its own shard of supervision edges; DDP averages the gradients.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from interestrec.evaluate.base import Interactions, Recommender
from interestrec.graph.config import GraphConfig


@dataclass(frozen=True)
class GraphJob:
    """Everything a Ray Train worker needs (passed as ``train_loop_config`` itself)."""

    graph: GraphConfig
    out: str  # pipeline output root: reads ingest/, encode/, cluster/
    seed: int = 0


def graph_inputs(data: Interactions, out: str | None):
    """HeteroData for ``data``'s training interactions, with LLM item vectors when the encode stage ran."""
    from interestrec import artifacts
    from interestrec.evaluate.models.llm import load_item_vectors
    from interestrec.graph.kg import build_graph

    items = artifacts.read_parquet(artifacts.join(out, "ingest", "items.parquet")) if out else None
    vecs = None
    if out and artifacts.exists(artifacts.join(out, "encode", "items.parquet")):
        vecs = load_item_vectors(out, data.item_ids)
    if items is None:
        import pyarrow as pa

        items = pa.table({"item_id": data.item_ids, "year": pa.nulls(data.n_items, pa.int32()),
                          "genres": pa.nulls(data.n_items, pa.list_(pa.string())), "tags": pa.nulls(data.n_items, pa.list_(pa.string()))})
    g, _ = build_graph(data.user_ids, data.item_ids, data.seq_user, data.seq_item, data.seq_time, items, item_vectors=vecs)
    return g


class _Embeddings(Recommender):
    name = "_embeddings"

    def __init__(self, users: np.ndarray, items: np.ndarray):
        super().__init__()
        self.u, self.i = users, items

    def fit(self, data):
        return self

    def score(self, users):
        return self.u[users] @ self.i.T


def build_model(graph, cfg: GraphConfig):
    """The model for ``graph`` with lazy layers initialised by one dummy forward (needed before DDP)."""
    import torch

    from interestrec.graph.model import GraphRecommender

    feats = {t: graph[t].x.shape[1] for t in graph.node_types if "x" in graph[t]}
    model = GraphRecommender(graph.metadata(), {t: graph[t].num_nodes for t in graph.node_types}, feats,
                             cfg.hidden, cfg.out_dim, cfg.layers, cfg.conv)
    with torch.no_grad():
        model(graph.x_dict, graph.edge_index_dict)
    return model


def train_epochs(model, graph, data: Interactions, cfg: GraphConfig, *, start_epoch: int = 0, rank: int = 0,
                 world: int = 1, seed: int = 0, on_epoch: Callable[[int, dict], None] | None = None) -> list[dict]:
    """Run epochs ``start_epoch..cfg.epochs-1``; ``on_epoch(epoch, metrics)`` after each (reporting/checkpoints)."""
    import torch

    from interestrec.evaluate.protocol import evaluate_model
    from interestrec.graph.model import apr_loss, bpr_loss

    torch.manual_seed(seed + rank)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    rel = ("user", "rates", "item")
    ei = graph[rel].edge_index
    n_edges = ei.shape[1]
    curve = []
    for epoch in range(start_epoch, cfg.epochs):
        t0 = time.perf_counter()
        model.train()
        # every worker draws the same permutation and takes an equal-sized disjoint share of it
        perm = np.random.default_rng(seed + epoch).permutation(n_edges)
        mine = perm[rank::world][: n_edges // world]
        losses = []
        for lo in range(0, len(mine), cfg.batch_size):
            batch = torch.as_tensor(mine[lo : lo + cfg.batch_size])
            keep = torch.ones(n_edges, dtype=torch.bool)
            keep[batch] = False  # supervision edges are not messages in this step
            eid = dict(graph.edge_index_dict)
            eid[rel] = ei[:, keep]
            eid[("item", "rev_rates", "user")] = ei[:, keep].flip(0)
            emb = model(graph.x_dict, eid)
            u = emb["user"][ei[0, batch]]
            p = emb["item"][ei[1, batch]]
            neg = emb["item"][torch.randint(0, data.n_items, (len(batch), cfg.negatives))]
            loss = bpr_loss(u, p, neg)
            if cfg.adversarial:
                loss = loss + cfg.adv_weight * apr_loss(u, p, neg, cfg.eps)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
        m = {"epoch": epoch, "loss": float(np.mean(losses)) if losses else float("nan"), "seconds": time.perf_counter() - t0}
        if rank == 0 and (data.target >= 0).any():
            users, items = embeddings(model, graph)
            m["valid_ndcg@10"] = evaluate_model(_Embeddings(users, items), data, (10,))["ndcg@10"]
        curve.append(m)
        if on_epoch:
            on_epoch(epoch, m)
    return curve


def embeddings(model, graph) -> tuple[np.ndarray, np.ndarray]:
    """Final user and item embeddings over the full training graph.

    Shapes:
        returns ``(n_users, d)`` and ``(n_items, d)`` float32.
    """
    import torch

    inner = getattr(model, "module", model)
    inner.eval()
    with torch.no_grad():
        emb = inner(graph.x_dict, graph.edge_index_dict)
    return emb["user"].numpy().astype(np.float32), emb["item"].numpy().astype(np.float32)


def fit_local(data: Interactions, cfg: GraphConfig, out: str | None = None, seed: int = 0):
    """The in-process reference: same model and loop, no Ray. Returns ``(model, graph, curve)``."""
    import torch

    torch.manual_seed(seed)
    graph = graph_inputs(data, out)
    model = build_model(graph, cfg)
    curve = train_epochs(model, graph, data, cfg, seed=seed)
    return model, graph, curve


def state_to_numpy(model) -> dict[str, np.ndarray]:
    """Model weights as numpy arrays (for safetensors; never pickle)."""
    inner = getattr(model, "module", model)
    return {k: v.detach().cpu().numpy() for k, v in inner.state_dict().items()}


def load_state(model, arrays: dict[str, np.ndarray]) -> None:
    """Load weights saved by :func:`state_to_numpy`."""
    import torch

    inner = getattr(model, "module", model)
    inner.load_state_dict({k: torch.as_tensor(v) for k, v in arrays.items()})


def train_loop_per_worker(job: GraphJob) -> None:
    """Ray Train worker: DDP over the same loop, a safetensors + json checkpoint every epoch, resumable."""
    import json
    import os
    import tempfile

    import ray.train
    import ray.train.torch
    import torch

    from interestrec import artifacts
    from interestrec.data import load_ingest
    from interestrec.evaluate.data import build_interactions

    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    torch.set_num_threads(max(1, int(job.graph.cpus_per_worker)))
    torch.manual_seed(job.seed)
    art = load_ingest(artifacts.join(job.out, "ingest"))
    item_ids = np.unique(art.items["item_id"].to_numpy())
    data = build_interactions(art.events, item_ids, "valid", job.out)
    graph = graph_inputs(data, job.out)
    model = build_model(graph, job.graph)
    start = 0
    ckpt = ray.train.get_checkpoint()
    if ckpt:
        with ckpt.as_directory() as d:
            load_state(model, artifacts.read_safetensors(os.path.join(d, "model.safetensors")))
            start = json.loads(open(os.path.join(d, "state.json")).read())["epoch"] + 1
    model = ray.train.torch.prepare_model(model, parallel_strategy_kwargs={"find_unused_parameters": True})

    def report(epoch: int, m: dict) -> None:
        with tempfile.TemporaryDirectory() as d:
            checkpoint = None
            if rank == 0:
                artifacts.write_safetensors(os.path.join(d, "model.safetensors"), state_to_numpy(model))
                artifacts.write_json(os.path.join(d, "state.json"), {"epoch": epoch, **m})
                checkpoint = ray.train.Checkpoint.from_directory(d)
            ray.train.report(m, checkpoint=checkpoint)

    train_epochs(model, graph, data, job.graph, start_epoch=start, rank=rank, world=world, seed=job.seed, on_epoch=report)
