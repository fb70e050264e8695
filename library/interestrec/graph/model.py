"""GraphSAGE / GAT link prediction over the knowledge graph (plain ``nn.Module``s; no Ray here).

Every node type gets a learned ID embedding, plus a linear projection of its features when it has
them (LLM vectors for items and users). A homogeneous 2-layer GNN (``SAGEConv`` mean aggregation, or
``GATConv``) is turned heterogeneous with ``torch_geometric.nn.to_hetero``; a residual connection keeps
the input embedding. Scores are dot products; training uses BPR with sampled negatives, optionally
with APR (adversarial perturbation of the embeddings, He et al. SIGIR 2018).
"""

from __future__ import annotations

import torch
from torch import nn


class _GNN(nn.Module):
    def __init__(self, hidden: int, out: int, layers: int, conv: str):
        super().__init__()
        from torch_geometric.nn import GATConv, SAGEConv

        self.convs = nn.ModuleList()
        for n in range(layers):
            dim = out if n == layers - 1 else hidden
            if conv == "gat":
                self.convs.append(GATConv((-1, -1), dim, heads=1, add_self_loops=False))
            else:
                self.convs.append(SAGEConv((-1, -1), dim, aggr="mean"))

    def forward(self, x, edge_index):
        for n, conv in enumerate(self.convs):
            x = conv(x, edge_index)
            if n < len(self.convs) - 1:
                x = torch.relu(x)
        return x


class GraphRecommender(nn.Module):
    """Heterogeneous GraphSAGE (or GAT) producing user and item embeddings.

    Args:
        metadata: ``HeteroData.metadata()``.
        num_nodes: nodes per type. feature_dims: input feature size per type that has features.
    """

    def __init__(self, metadata, num_nodes: dict[str, int], feature_dims: dict[str, int], hidden: int = 64,
                 out: int = 64, layers: int = 2, conv: str = "sage"):
        super().__init__()
        from torch_geometric.nn import to_hetero

        self.emb = nn.ModuleDict({t: nn.Embedding(n, hidden) for t, n in num_nodes.items()})
        self.proj = nn.ModuleDict({t: nn.Linear(d, hidden, bias=False) for t, d in feature_dims.items()})
        for e in self.emb.values():
            nn.init.normal_(e.weight, std=0.1)
        self.gnn = to_hetero(_GNN(hidden, out, layers, conv), metadata, aggr="sum")
        self.skip = nn.ModuleDict({t: nn.Linear(hidden, out, bias=False) for t in ("user", "item")})

    def forward(self, x_dict: dict, edge_index_dict: dict) -> dict[str, torch.Tensor]:
        """Embeddings of every node type.

        Shapes:
            x_dict[t]: ``(n_t, f_t)`` features (types without features are absent).
            returns ``{"user": (n_users, out), "item": (n_items, out), ...}``.
        """
        h = {}
        for t, e in self.emb.items():
            h[t] = e.weight
            if t in self.proj and t in x_dict:
                h[t] = h[t] + self.proj[t](x_dict[t])
        out = self.gnn(h, edge_index_dict)
        for t in ("user", "item"):
            out[t] = out[t] + self.skip[t](h[t])
        return out


def bpr_loss(u: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
    """Bayesian personalised ranking: ``-log σ(u·pos − u·neg)`` averaged.

    Shapes:
        u, pos: ``(b, d)``; neg: ``(b, n_neg, d)``.
    """
    sp = (u * pos).sum(-1, keepdim=True)
    sn = torch.einsum("bd,bnd->bn", u, neg)
    return torch.nn.functional.softplus(sn - sp).mean()


def apr_loss(u: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor, eps: float) -> torch.Tensor:
    """BPR under the worst-case (FGSM) perturbation of size ``eps`` of the embeddings (APR).

    The perturbation is ``eps · g / ‖g‖`` with ``g`` the gradient of the BPR loss w.r.t. each embedding
    (treated as a constant), applied to user, positive and negative embeddings.
    """
    du, dp, dn = (t.detach().requires_grad_(True) for t in (u, pos, neg))
    g = torch.autograd.grad(bpr_loss(du, dp, dn), [du, dp, dn])
    delta = [eps * torch.nn.functional.normalize(x, dim=-1) for x in g]
    return bpr_loss(u + delta[0], pos + delta[1], neg + delta[2])
