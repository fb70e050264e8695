"""LightGCN (He et al., SIGIR 2020) on PyG: BPR over the full bipartite user–item train graph.

Users are nodes ``0..n_users-1`` and items nodes ``n_users..n_users+n_items-1`` of one undirected
graph built from ``data.train``. Every optimisation step propagates the whole graph
(``torch_geometric.nn.models.LightGCN.get_embedding``), scores a mini-batch of observed (user, item)
pairs against one uniformly sampled unobserved item each and minimises the BPR loss with L2 on the
batch's layer-0 embeddings. The symmetric normalisation ``D^-1/2 A D^-1/2`` is computed once and
handed to the layers as a sparse CSR adjacency (:func:`normalized_adjacency`); the reference edge-list
form (:func:`bipartite_graph`, normalised by PyG on every call) gives the same embeddings.

Budget: ``epochs`` full passes over the train pairs (default 50 at batch 8192: 13 steps per epoch on
ml-latest-small, about 0.05 s per full-graph step, so roughly 35–50 s on 2 idle CPU cores).
"""

from __future__ import annotations

import dataclasses
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from interestrec import progress
from interestrec.configcheck import check_config
from interestrec.evaluate.base import Interactions, Recommender, register
from interestrec.ids import lookup


@dataclass(frozen=True)
class LightGCNParams:
    """The LightGCN row's parameters (a grid point overrides some of them).

    Attributes:
        dim: embedding size. layers: propagation layers. lr: Adam step. reg: BPR L2 strength
            (``lambda_reg``). epochs: passes over the train pairs. batch: pairs per step. seed: torch and
            negative-sampling seed. threads: ``torch.set_num_threads`` during ``fit`` (``None`` keeps the
            caller's setting).
    """

    dim: int = 64
    layers: int = 3
    lr: float = 1e-2
    reg: float = 1e-4
    epochs: int = 50
    batch: int = 8192
    seed: int = 0
    threads: int | None = None

    def __post_init__(self) -> None:
        check_config(self, "lightgcn", ge={"dim": 1, "layers": 1, "reg": 0, "epochs": 0, "batch": 1, "threads": 1},
                     gt={"lr": 0})


@contextmanager
def _seeded(seed: int, threads: int | None):
    """Seed torch inside a forked RNG (the caller's global state is left as it was); optional thread count."""
    import torch

    before = torch.get_num_threads()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if threads:
            torch.set_num_threads(int(threads))
        try:
            yield
        finally:
            torch.set_num_threads(before)


def bipartite_graph(train, n_users: int, n_items: int):
    """Undirected user–item graph as an edge list (the reference form PyG normalises itself).

    Args:
        train: ``scipy.sparse`` ``(n_users, n_items)``; every stored non-zero is one edge.

    Shapes:
        returns ``edge_index`` ``(2, 2·nnz)`` int64: user ``u`` is node ``u``, item ``i`` node
        ``n_users + i``, each edge present in both directions.
    """
    import torch

    coo = train.tocoo()
    keep = coo.data != 0
    u = torch.as_tensor(coo.row[keep], dtype=torch.long)
    i = torch.as_tensor(coo.col[keep], dtype=torch.long) + n_users
    return torch.stack([torch.cat([u, i]), torch.cat([i, u])])


def normalized_adjacency(train, n_users: int, n_items: int):
    """LightGCN's ``D^-1/2 A D^-1/2`` of the bipartite graph as a torch CSR matrix.

    The same propagation as :func:`bipartite_graph` with PyG's ``gcn_norm`` (no self loops), but
    normalised once and multiplied with a sparse-dense product instead of per-edge scatter, which is
    several times faster on CPU.

    Shapes:
        train: ``(n_users, n_items)``; returns ``(n, n)`` float32 sparse CSR, ``n = n_users + n_items``.
    """
    import warnings

    import scipy.sparse as sp
    import torch

    r = sp.csr_matrix(train, dtype=np.float32, copy=True)
    r.eliminate_zeros()
    r.data[:] = 1.0
    a = sp.bmat([[None, r], [r.T, None]], format="csr", dtype=np.float32)
    deg = np.asarray(a.sum(1)).ravel()
    inv = np.zeros_like(deg)
    inv[deg > 0] = deg[deg > 0] ** -0.5
    a = sp.diags(inv) @ a @ sp.diags(inv)
    a = a.tocsr()
    a.sort_indices()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "sparse CSR support is in beta"
        return torch.sparse_csr_tensor(torch.as_tensor(a.indptr, dtype=torch.long),
                                       torch.as_tensor(a.indices, dtype=torch.long),
                                       torch.as_tensor(a.data, dtype=torch.float32), size=a.shape)


def sample_negatives(rng: np.random.Generator, users: np.ndarray, seen_keys: np.ndarray, n_items: int,
                     tries: int = 10) -> np.ndarray:
    """One uniformly drawn item per user that is not among the user's train items.

    Args:
        seen_keys: sorted ``user * n_items + item`` of every train interaction (a CSR matrix with
            sorted indices yields them in order).
        tries: redraws for colliding draws; a draw still colliding after them is kept (only likely
            for users who have seen nearly the whole catalogue).

    Shapes:
        users: ``(b,)``; seen_keys: ``(nnz,)``; returns ``(b,)`` int64 item indices.
    """
    users = np.asarray(users, dtype=np.int64)
    neg = rng.integers(0, n_items, size=len(users))
    todo = np.arange(len(users))
    for _ in range(tries):
        keys = users[todo] * n_items + neg[todo]
        todo = todo[lookup(seen_keys, keys) >= 0]
        if len(todo) == 0:
            break
        neg[todo] = rng.integers(0, n_items, size=len(todo))
    return neg.astype(np.int64)


@register
class LightGCNRecommender(Recommender):
    """PyG ``LightGCN`` trained with BPR on the full train graph.

    Params: the fields of :class:`LightGCNParams` (unknown names and bad values are errors).
    """

    name = "lightgcn"
    baseline = True
    epoch_param = "epochs"
    grid = [
        {"dim": 64, "layers": 3, "reg": 1e-4},
        {"dim": 64, "layers": 2, "reg": 1e-4},
    ]

    def __init__(self, **params) -> None:
        known = sorted(f.name for f in dataclasses.fields(LightGCNParams))
        unknown = set(params) - set(known)
        if unknown:
            raise ValueError(f"LightGCN: unknown parameters {sorted(unknown)}; known: {known}")
        super().__init__(**params)
        self.cfg = LightGCNParams(**params)
        self.losses: list[float] = []

    def fit(self, data: Interactions) -> LightGCNRecommender:
        """Train on ``data.train``; ``self.losses`` holds the mean BPR loss of every epoch."""
        import torch
        from torch_geometric.nn.models import LightGCN

        c = self.cfg
        n_users, n_items = data.n_users, data.n_items
        train = data.train.tocsr().copy()
        train.eliminate_zeros()
        train.sort_indices()
        if train.shape != (n_users, n_items):
            raise ValueError(f"LightGCN: train matrix is {train.shape}, expected {(n_users, n_items)}")
        if train.nnz == 0:
            raise ValueError("LightGCN: the train matrix has no interactions")
        pos_u = np.repeat(np.arange(n_users), np.diff(train.indptr))
        pos_i = train.indices.astype(np.int64)
        seen_keys = pos_u * n_items + pos_i  # sorted: CSR rows in order, indices sorted
        rng = np.random.default_rng(int(c.seed))
        with _seeded(int(c.seed), c.threads):
            adj = normalized_adjacency(train, n_users, n_items)
            model = LightGCN(n_users + n_items, int(c.dim), int(c.layers), normalize=False)
            opt = torch.optim.Adam(model.parameters(), lr=float(c.lr))
            batch = int(c.batch)
            self.losses = []
            for epoch in progress.track(range(int(c.epochs)), f"{self.name}: epoch", unit="epoch"):
                order = rng.permutation(len(pos_u))
                total, steps = 0.0, 0
                for lo in range(0, len(order), batch):
                    b = order[lo : lo + batch]
                    u = pos_u[b]
                    neg = sample_negatives(rng, u, seen_keys, n_items)
                    u_t = torch.as_tensor(u)
                    p_t = torch.as_tensor(pos_i[b]) + n_users
                    n_t = torch.as_tensor(neg) + n_users
                    emb = model.get_embedding(adj)
                    pos = (emb[u_t] * emb[p_t]).sum(-1)
                    ngt = (emb[u_t] * emb[n_t]).sum(-1)
                    loss = model.recommendation_loss(pos, ngt, node_id=torch.cat([u_t, p_t, n_t]),
                                                     lambda_reg=float(c.reg))
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                    total += float(loss.detach())
                    steps += 1
                self.losses.append(total / max(steps, 1))
                if self.epoch_hook is not None:
                    self._set_embeddings(model, adj, n_users)
                    self.end_epoch(epoch + 1)
            model.eval()
            self._set_embeddings(model, adj, n_users)
        return self

    def _set_embeddings(self, model, adj, n_users: int) -> None:
        """The propagated user and item embeddings of ``model`` (no gradient, no random numbers drawn)."""
        import torch

        with torch.no_grad():
            emb = model.get_embedding(adj)
        self.user_emb = emb[:n_users].numpy().astype(np.float32)
        self.item_emb = emb[n_users:].numpy().astype(np.float32)

    def score(self, users: np.ndarray) -> np.ndarray:
        """Dot products of the users' propagated embeddings with every item's.

        Shapes:
            users: ``(b,)``; returns ``(b, n_items)`` float32.
        """
        return self.user_emb[np.asarray(users, dtype=np.int64)] @ self.item_emb.T
