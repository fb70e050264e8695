"""GraphSAGE / GAT link prediction over the knowledge graph (a plain ``nn.Module``; no Ray here).

Input embedding of a node = a learned ID embedding + (for users and items with LLM vectors) a linear
projection of those vectors — so sparse items still get a content-based embedding. ``layers`` rounds
of heterogeneous message passing (``HeteroConv`` over one ``SAGEConv(aggr="mean")`` — or
``GATConv(add_self_loops=False)`` — per relation, relations summed) follow; the final embedding is the
mean of the input and every layer's output (layer combination, as in LightGCN) or the last layer.
Scores are dot products; training uses BPR over sampled negatives, optionally with APR (He et al.,
SIGIR 2018): an FGSM perturbation of the final user/item embeddings and ``BPR + λ·BPR(perturbed)``.
"""

from __future__ import annotations

import torch
from torch import nn


class GraphRecommender(nn.Module):
    """Heterogeneous GraphSAGE (or GAT) producing an embedding for every node.

    Args:
        metadata: ``HeteroData.metadata()`` (node types, edge types).
        num_nodes: nodes per type. feature_dims: input feature size per type that has features.
        hidden: embedding size (input, every layer, output). layers: message-passing rounds.
        conv: ``sage`` or ``gat``. activation: ``none`` or ``relu`` between layers.
        layer_combine: average the input and all layer outputs (else the last layer's output).
        no_id: node types with features that get no ID embedding (inductive: their input is the
            projected features only, which limits memorisation).
    """

    def __init__(self, metadata, num_nodes: dict[str, int], feature_dims: dict[str, int], hidden: int = 64,
                 layers: int = 2, conv: str = "sage", activation: str = "none", layer_combine: bool = True,
                 no_id: tuple[str, ...] = ()):
        super().__init__()
        from torch_geometric.nn import GATConv, HeteroConv, SAGEConv

        node_types, edge_types = metadata
        self.node_types = list(node_types)
        self.activation, self.layer_combine = activation, layer_combine
        missing = [t for t in no_id if t not in feature_dims]
        if missing:
            raise ValueError(f"node types {missing} have no features, so they need an ID embedding")
        self.emb = nn.ModuleDict({t: nn.Embedding(num_nodes[t], hidden) for t in node_types if t not in no_id})
        for e in self.emb.values():
            nn.init.normal_(e.weight, std=0.1)
        self.proj = nn.ModuleDict({t: nn.Linear(d, hidden, bias=False) for t, d in feature_dims.items()})

        def make():
            if conv == "gat":
                return GATConv((hidden, hidden), hidden, heads=1, add_self_loops=False)
            if conv == "sage":
                return SAGEConv((hidden, hidden), hidden, aggr="mean")
            raise ValueError(f"conv must be 'sage' or 'gat', got {conv!r}")

        self.convs = nn.ModuleList([HeteroConv({tuple(et): make() for et in edge_types}, aggr="sum") for _ in range(layers)])

    def inputs(self, x_dict: dict, n_id_dict: dict | None = None) -> dict[str, torch.Tensor]:
        """Input embeddings: ID embedding (+ projected features).

        Shapes:
            x_dict[t]: ``(n_t, f_t)`` features of the (sub)graph's nodes; n_id_dict[t]: ``(n_t,)`` global
            node ids of a sampled subgraph (``None`` = the full graph). returns ``{t: (n_t, hidden)}``.
        """
        h = {}
        for t, e in self.emb.items():
            h[t] = e.weight if n_id_dict is None else e(n_id_dict[t])
        for t, p in self.proj.items():
            if t in x_dict:
                h[t] = h[t] + p(x_dict[t]) if t in h else p(x_dict[t])
        return h

    def forward(self, x_dict: dict, edge_index_dict: dict, n_id_dict: dict | None = None,
                return_inputs: bool = False):
        """Final embeddings of every node type (and the input embeddings when ``return_inputs``).

        Shapes:
            edge_index_dict[(src, rel, dst)]: ``(2, e)`` local node indices.
            returns ``{t: (n_t, hidden)}``.
        """
        h0 = self.inputs(x_dict, n_id_dict)
        h, outs = h0, [h0]
        for n, conv in enumerate(self.convs):
            new = conv(h, edge_index_dict)
            new = {t: new.get(t, h[t]) for t in h}  # a type with no incoming edges keeps its embedding
            if self.activation == "relu" and n < len(self.convs) - 1:
                new = {t: torch.relu(v) for t, v in new.items()}
            h = new
            outs.append(h)
        if self.layer_combine:
            final = {t: torch.stack([o[t] for o in outs]).mean(0) for t in h0}
        else:
            final = h
        return (final, h0) if return_inputs else final


def scores(u: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
    """Dot-product decoder.

    Shapes:
        u: ``(b, d)``; items: ``(b, d)`` → ``(b,)`` or ``(b, n, d)`` → ``(b, n)``.
    """
    if items.dim() == 2:
        return (u * items).sum(-1)
    return torch.einsum("bd,bnd->bn", u, items)


def bpr_loss(u: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
    """Bayesian personalised ranking ``-log σ(u·pos − u·neg)``, averaged over edges and negatives.

    Shapes:
        u, pos: ``(b, d)``; neg: ``(b, n_neg, d)``.
    """
    return torch.nn.functional.softplus(scores(u, neg) - scores(u, pos)[:, None]).mean()


def relative_perturbation(x: torch.Tensor, direction: torch.Tensor, eps: float) -> torch.Tensor:
    """``eps · ‖x‖ · direction / ‖direction‖`` per row (a perturbation relative to each embedding's norm).

    Shapes:
        x, direction: ``(..., d)``; returns the same shape.
    """
    return eps * x.detach().norm(dim=-1, keepdim=True) * torch.nn.functional.normalize(direction, dim=-1)


def apr_loss(u: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor, eps: float) -> torch.Tensor:
    """BPR under the FGSM worst-case perturbation of the embeddings (APR).

    The perturbation of each embedding is its BPR-loss gradient direction (a constant: the adversary
    is not differentiated through), scaled to ``eps`` times the embedding's norm, applied to the user,
    positive and negative embeddings.

    Shapes:
        u, pos: ``(b, d)``; neg: ``(b, n_neg, d)``.
    """
    du, dp, dn = (t.detach().requires_grad_(True) for t in (u, pos, neg))
    g = torch.autograd.grad(bpr_loss(du, dp, dn), [du, dp, dn])
    return bpr_loss(u + relative_perturbation(u, g[0], eps), pos + relative_perturbation(pos, g[1], eps),
                    neg + relative_perturbation(neg, g[2], eps))
