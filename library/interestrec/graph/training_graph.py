"""The graph a pipeline output trains on: the evaluation's :class:`~interestrec.evaluate.base.Interactions`
of a phase and the knowledge graph over exactly its users, items and learnable interactions
(:mod:`interestrec.graph.kg`), with the node features; :mod:`interestrec.graph.train` fits on it.
"""

from __future__ import annotations

import numpy as np

from interestrec.encode.config import HALF_LIFE_DAYS
from interestrec.evaluate.base import Interactions
from interestrec.graph.config import GraphConfig

RATES = ("user", "rates", "item")
REV_RATES = ("item", "rev_rates", "user")
RECENT = ("user", "recent", "item")
REV_RECENT = ("item", "rev_recent", "user")


def load_interactions(out: str, phase: str = "valid") -> Interactions:
    """The evaluation table's :class:`Interactions` for a pipeline output (same catalog and ids)."""
    from interestrec import artifacts
    from interestrec.data import load_ingest
    from interestrec.evaluate.data import build_interactions

    art = load_ingest(artifacts.join(out, "ingest"))
    item_ids = np.unique(np.r_[art.items["item_id"].to_numpy(), art.events["item_id"].to_numpy()])
    return build_interactions(art.events, item_ids, phase, out)


def graph_for(data: Interactions, cfg: GraphConfig, events=None, items=None, item_vectors=None, clusters=None):
    """The knowledge graph whose users/items are exactly ``data``'s, with ``data``'s learnable interactions.

    Artifacts not passed are read from ``data.artifacts`` when it is set: ingest events (for tag edges)
    and items, encode-stage item vectors, cluster assignments — each optional. User features are the
    users' item vectors pooled over the same interactions (``encode.pooling``, as the encode stage does).
    """
    import torch

    from interestrec import artifacts, layout
    from interestrec.encode.pooling import pool_user_vectors
    from interestrec.graph.kg import GraphInputs, GraphParams, assemble_graph
    from interestrec.graph.kg_tables import aligned_vectors, build_graph

    out = data.artifacts
    if out is not None:
        if events is None or items is None:
            from interestrec.data import load_ingest

            art = load_ingest(artifacts.join(out, "ingest"))
            events = art.events if events is None else events
            items = art.items if items is None else items
        serving_vectors = artifacts.join(out, layout.ENCODE, layout.ENCODE_ITEMS)
        if item_vectors is None and cfg.use_features and artifacts.exists(serving_vectors):
            from interestrec.encode.phases import item_vectors_path

            item_vectors = artifacts.read_parquet(item_vectors_path(out, data.phase))  # the phase's leak-free vectors
        assignments = artifacts.join(out, layout.CLUSTER, layout.CLUSTER_ASSIGNMENTS)
        if clusters is None and artifacts.exists(assignments):
            clusters = artifacts.read_parquet(assignments)
    if not cfg.use_features:
        item_vectors = None
    learn = ("train",) if data.phase == "valid" else ("train", "valid")
    if events is not None:
        params = GraphParams(max_tags=cfg.max_tags, user_tags=cfg.user_tags, recent=cfg.recent)
        graph = build_graph(events, items, item_vectors, None, clusters, splits=learn, user_ids=data.user_ids,
                            item_ids=data.item_ids, params=params)
        if graph[RATES].edge_index.shape[1] != len(data.seq_user):
            raise ValueError("graph interactions differ from the evaluation interactions (events and split mismatch)")
    else:
        inputs = GraphInputs(data.user_ids, data.item_ids, data.seq_user, data.seq_item, data.seq_time, items=items)
        graph = assemble_graph(inputs, GraphParams(max_tags=cfg.max_tags, user_tags=False, recent=cfg.recent))
        if item_vectors is not None:
            graph["item"].x = torch.as_tensor(aligned_vectors(item_vectors, data.item_ids, "item_id", "item_vectors"))
    if "x" in graph["item"]:
        last = np.zeros(data.n_users, np.int64)
        np.maximum.at(last, data.seq_user, data.seq_time)
        users, _ = pool_user_vectors(data.seq_user, data.seq_item, data.seq_time, np.ones(len(data.seq_user)),
                                     graph["item"].x.numpy(), data.n_users, last[data.seq_user], HALF_LIFE_DAYS)
        graph["user"].x = torch.as_tensor(users.astype(np.float32))
    return graph
