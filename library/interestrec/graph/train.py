"""The GraphSAGE training loop, shared by the in-process reference (:func:`fit_local`) and Ray Train.

``sampling="full"``: full-graph message passing; every step supervises a batch of train edges that
are removed from the message-passing graph for that step (no target leakage), with BPR over
uniformly sampled negative items (+ APR when enabled). ``sampling="neighbor"``: the same loss on
subgraphs from :class:`~interestrec.graph.sampler.TemporalNeighborSampler` rooted at the batch's
user, positive and negative items (nothing at or after the supervision time is seen).

Under Ray Train (:func:`interestrec.graph.ray_train.train_loop`, run by :func:`interestrec.train.fit`) every
worker holds the graph, takes its own disjoint share of the epoch's supervision edges and DDP averages the
gradients; rank 0 reports a safetensors + json checkpoint every epoch and a restarted run resumes from the
latest one. The graph it trains on is :func:`interestrec.graph.training_graph.graph_for`'s.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from interestrec.data.split import steps_from_end
from interestrec.evaluate.base import Interactions, Recommender
from interestrec.graph.config import GraphConfig
from interestrec.graph.training_graph import RATES, RECENT, REV_RATES, REV_RECENT, graph_for
from interestrec.train.harness import TrainSpec


@dataclass(frozen=True)
class GraphJob:
    """Everything a Ray Train worker needs; passed itself as ``train_loop_config``.

    Attributes:
        graph: the stage config. out: pipeline output root (reads ``ingest/``, ``encode/``, ``cluster/``).
        phase: ``valid`` (learn from train) or ``test`` (train + valid). seed: base random seed.
    """

    graph: GraphConfig
    out: str
    phase: str = "valid"
    seed: int = 0

    def train_spec(self) -> TrainSpec:
        """Ray Train settings: the config's workers and failures, the last two checkpoints kept."""
        cfg = self.graph
        return TrainSpec(label="graph", progress="graph: epoch", epochs=cfg.epochs, num_workers=cfg.num_workers,
                         use_gpu=cfg.use_gpu, cpus_per_worker=cfg.cpus_per_worker, max_failures=cfg.max_failures,
                         keep_checkpoints=2)


def features(graph) -> dict:
    """Node features by type (``{}`` for a graph built without them; ``graph.x_dict`` raises then)."""
    return {t: graph[t].x for t in graph.node_types if "x" in graph[t]}


def build_graph_model(graph, cfg: GraphConfig):
    """The model for ``graph``, run once on the full graph (initialises any lazy layer; needed before DDP)."""
    import torch

    from interestrec.graph.model import GraphRecommender

    feats = {t: int(graph[t].x.shape[1]) for t in graph.node_types if "x" in graph[t]}
    model = GraphRecommender(graph.metadata(), {t: int(graph[t].num_nodes) for t in graph.node_types}, feats,
                             cfg.hidden, cfg.layers, cfg.conv, cfg.activation, cfg.layer_combine,
                             tuple(t for t in cfg.no_id if t in feats))
    with torch.no_grad():
        model(features(graph), graph.edge_index_dict)
    return model


class EmbeddingScorer(Recommender):
    """Dot-product scores of fixed user/item embeddings (used to evaluate a trained model)."""

    name = "_embeddings"

    def __init__(self, users: np.ndarray, items: np.ndarray):
        super().__init__()
        self.users, self.items = users, items

    def fit(self, data: Interactions) -> EmbeddingScorer:
        return self

    def score(self, users: np.ndarray) -> np.ndarray:
        return self.users[users] @ self.items.T


def model_device(model):
    """The device of ``model``'s parameters (a DDP-wrapped model too)."""
    return next(model.parameters()).device


def on_device(graph, device):
    """``graph`` itself on the CPU, else a copy of it on ``device`` (the CPU graph stays the sampler's source)."""
    return graph if device.type == "cpu" else graph.clone().to(device)


def _full_step(model, graph, batch, neg, cfg: GraphConfig):
    import torch

    ei = graph[RATES].edge_index
    keep = torch.ones(ei.shape[1], dtype=torch.bool, device=ei.device)
    keep[batch] = False  # supervision edges carry no messages in their own step
    eid = dict(graph.edge_index_dict)
    eid[RATES] = ei[:, keep]
    eid[REV_RATES] = eid[RATES].flip(0)
    if RECENT in eid:
        k = keep[graph[RECENT].rates_id]
        eid[RECENT] = graph[RECENT].edge_index[:, k]
        eid[REV_RECENT] = eid[RECENT].flip(0)
    emb, h0 = model(features(graph), eid, return_inputs=True)
    u_idx, p_idx = ei[0, batch], ei[1, batch]
    return (emb["user"][u_idx], emb["item"][p_idx], emb["item"][neg],
            (h0["user"][u_idx], h0["item"][p_idx], h0["item"][neg]))


def _sampled_step(model, graph, sampler, batch, neg, cfg: GraphConfig, rng: np.random.Generator):
    import torch

    ei = graph[RATES].edge_index
    t = graph[RATES].time[batch].numpy()
    u = ei[0, batch].numpy()
    items = np.concatenate([ei[1, batch].numpy(), neg.numpy().reshape(-1)])
    item_t = np.concatenate([t, np.repeat(t, neg.shape[1])])
    sub = sampler.sample({"user": (u, t), "item": (items, item_t)}, rng)
    dev = model_device(model)
    n_id = {k: torch.as_tensor(v) for k, v in sub.n_id.items()}
    x = {k: graph[k].x[n_id[k]].to(dev) for k in n_id if "x" in graph[k]}
    n_id = {k: v.to(dev) for k, v in n_id.items()}
    eid = {et: torch.as_tensor(v, device=dev) for et, v in sub.edge_index.items()}
    emb, h0 = model(x, eid, n_id, return_inputs=True)
    b = len(batch)
    su, si = sub.seeds["user"], sub.seeds["item"]
    pos_l, neg_l = torch.as_tensor(si[:b], device=dev), torch.as_tensor(si[b:], device=dev).view(b, -1)
    su = torch.as_tensor(su, device=dev)
    return (emb["user"][su], emb["item"][pos_l], emb["item"][neg_l], (h0["user"][su], h0["item"][pos_l], h0["item"][neg_l]))


def make_optimizer(model, cfg: GraphConfig):
    """Adam over the model's parameters."""
    import torch

    return torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)


def train_epochs(model, graph, data: Interactions, cfg: GraphConfig, opt=None, *, start_epoch: int = 0, rank: int = 0,
                 world: int = 1, seed: int = 0, validate: bool = True,
                 on_epoch: Callable[[int, dict], None] | None = None) -> list[dict]:
    """Run epochs ``start_epoch .. cfg.epochs - 1``; ``on_epoch(epoch, metrics)`` after each.

    Every rank draws the epoch's permutation of the supervision edges from the same seed and takes the
    disjoint share ``perm[rank::world]`` (equal sizes, so DDP's collective calls match). Rank 0 adds
    validation NDCG@10 when ``validate`` and ``data`` has targets. ``graph`` stays on the CPU (sampling and
    edge bookkeeping); full-graph steps run on a copy on the model's device.
    """
    import torch

    from interestrec.evaluate.protocol import evaluate_model
    from interestrec.graph.model import apr_loss, bpr_loss

    opt = opt or make_optimizer(model, cfg)
    sampler = None
    if cfg.sampling == "neighbor":
        from interestrec.graph.sampler import TemporalNeighborSampler

        sampler = TemporalNeighborSampler(graph, cfg.fanout)
    device = model_device(model)
    dev_graph = on_device(graph, device) if sampler is None else None
    n_edges = graph[RATES].edge_index.shape[1]
    n_items = int(graph["item"].num_nodes)
    if n_edges < world:
        raise ValueError(f"{n_edges} supervision edges cannot be shared by {world} workers")
    pick = None
    if cfg.recency_half_life > 0:
        ei = graph[RATES].edge_index.numpy()
        w = 0.5 ** (steps_from_end(ei[0], graph[RATES].time.numpy(), ei[1]) / cfg.recency_half_life)
        pick = w / w.sum()
    from interestrec import progress

    curve = []
    bar = progress.Progress("graph: epoch", total=cfg.epochs - start_epoch, unit="epoch")
    for epoch in range(start_epoch, cfg.epochs):
        t0 = time.perf_counter()
        model.train()
        rng = np.random.default_rng([seed, epoch])
        if pick is None:
            order = rng.permutation(n_edges)
        else:  # recency-weighted supervision: an epoch draws n_edges edges with replacement
            order = rng.choice(n_edges, size=n_edges, p=pick)
        mine = order[rank::world][: n_edges // world]
        gen = torch.Generator().manual_seed(int(rng.integers(2**31)) + rank)
        wrng = np.random.default_rng([seed, epoch, rank])
        losses = []
        for lo in range(0, len(mine), cfg.batch_size):
            batch = torch.as_tensor(mine[lo : lo + cfg.batch_size])
            neg = torch.randint(0, n_items, (len(batch), cfg.negatives), generator=gen)
            if sampler is None:
                u, p, n, inputs = _full_step(model, dev_graph, batch.to(device), neg.to(device), cfg)
            else:
                u, p, n, inputs = _sampled_step(model, graph, sampler, batch, neg, cfg, wrng)
            loss = bpr_loss(u, p, n)
            if cfg.adversarial:
                loss = loss + cfg.adv_weight * apr_loss(u, p, n, cfg.eps)
            if cfg.reg > 0:
                loss = loss + cfg.reg * sum(x.pow(2).sum(-1).mean() for x in inputs)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
        m = {"epoch": epoch, "loss": float(np.mean(losses)) if losses else float("nan"),
             "seconds": time.perf_counter() - t0}
        if validate and rank == 0 and (data.target >= 0).any():
            users, items = embeddings(model, graph if dev_graph is None else dev_graph)
            m["valid_ndcg@10"] = float(evaluate_model(EmbeddingScorer(users, items), data, (10,))["ndcg@10"])
        curve.append(m)
        bar.update(note=f"loss {m['loss']:.4f}")
        if on_epoch:
            on_epoch(epoch, m)
    bar.close()
    return curve


def embeddings(model, graph) -> tuple[np.ndarray, np.ndarray]:
    """Final user and item embeddings over the full training graph (run on the model's device).

    Shapes:
        returns ``(n_users, d)`` and ``(n_items, d)`` float32.
    """
    import torch

    inner = getattr(model, "module", model)
    if graph[RATES].edge_index.device != model_device(inner):
        graph = graph.clone().to(model_device(inner))
    was = inner.training
    inner.eval()
    with torch.no_grad():
        emb = inner(features(graph), graph.edge_index_dict)
    inner.train(was)
    return (emb["user"].cpu().numpy().astype(np.float32), emb["item"].cpu().numpy().astype(np.float32))


def perturbed_ndcg(users: np.ndarray, items: np.ndarray, data: Interactions, eps: float, seed: int = 0) -> float:
    """NDCG@10 after a random perturbation of every embedding of size ``eps`` times its norm (robustness).

    Shapes:
        users: ``(n_users, d)``; items: ``(n_items, d)``.
    """
    from interestrec.evaluate.protocol import evaluate_model

    rng = np.random.default_rng(seed)

    def noisy(x: np.ndarray) -> np.ndarray:
        d = rng.standard_normal(x.shape).astype(np.float32)
        d /= np.linalg.norm(d, axis=1, keepdims=True)
        return x + eps * np.linalg.norm(x, axis=1, keepdims=True) * d

    return float(evaluate_model(EmbeddingScorer(noisy(users), noisy(items)), data, (10,))["ndcg@10"])


def fit_local(data: Interactions, cfg: GraphConfig, seed: int = 0, graph=None, validate: bool = True,
              device: str = "cpu"):
    """The in-process reference: the same model and loop as the Ray Train loop, no Ray.

    Args:
        device: where the model trains (``cpu`` or ``cuda``); the returned graph stays on the CPU.

    Returns:
        ``(model, graph, curve)``.
    """
    import torch

    torch.set_num_threads(cfg.threads)
    torch.manual_seed(seed)
    graph = graph if graph is not None else graph_for(data, cfg)
    model = build_graph_model(graph, cfg).to(device)
    curve = train_epochs(model, graph, data, cfg, seed=seed, validate=validate)
    return model, graph, curve
