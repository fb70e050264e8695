"""The ``graph`` stage: knowledge graph + GraphSAGE link prediction on Ray Train (DDP), checkpointed, resumable.

Outputs (``docs/artifacts.md``): ``users.parquet`` / ``items.parquet`` (final embeddings),
``model.safetensors`` + ``model.json``, ``curve.json`` and the summary, which includes the APR
robustness check: validation NDCG@10 with the embeddings randomly perturbed at test time, for this
model and for a companion trained in-process with the other APR setting.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np

from interestrec import artifacts
from interestrec.graph.train import GraphJob, train_loop
from interestrec.stages import StageContext


def train_with_ray(job: GraphJob, storage_path: str, name: str = "graphsage"):
    """Fit with ``TorchTrainer`` and return its ``Result``.

    A run with the same ``name`` under ``storage_path`` (local dir or pyarrow URI) resumes from its
    latest checkpoint: the worker loop reads it with ``ray.train.get_checkpoint()``.
    """
    from ray.train import CheckpointConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    cfg = job.graph
    run = RunConfig(name=name, storage_path=storage_path, checkpoint_config=CheckpointConfig(num_to_keep=2))
    scaling = ScalingConfig(num_workers=cfg.num_workers, use_gpu=cfg.use_gpu,
                            resources_per_worker={"CPU": cfg.cpus_per_worker})
    return TorchTrainer(train_loop, train_loop_config=job, scaling_config=scaling, run_config=run).fit()


def result_curve(result) -> list[dict]:
    """Per-epoch metrics of a Ray Train result, from its latest checkpoint (including resumed epochs)."""
    if result.checkpoint is None:
        return []
    state = artifacts.read_json(artifacts.join(result.checkpoint.path, "state.json"))
    keep = ("epoch", "loss", "seconds", "valid_ndcg@10")
    return [{k: (int(v) if k == "epoch" else float(v)) for k, v in m.items() if k in keep} for m in state.get("curve", [])]


def run(ctx: StageContext) -> dict:
    """Stage entry point (see ``interestrec.stages``)."""
    import pyarrow as pa

    from interestrec.evaluate.protocol import evaluate_model
    from interestrec.graph.train import (
        EmbeddingScorer,
        build_model,
        embeddings,
        fit_local,
        graph_for,
        load_interactions,
        load_state_arrays,
        perturbed_ndcg,
    )

    cfg = ctx.config.graph
    out = ctx.stage_dir("graph")
    job = GraphJob(graph=cfg, out=ctx.out, phase="valid", seed=ctx.config.seed)
    storage = cfg.storage_path or os.path.abspath(artifacts.join(out, "ray_train"))
    result = train_with_ray(job, storage, name=f"graphsage-{artifacts.hash_config(cfg)}")
    if result.error:
        raise RuntimeError(f"graph training failed: {result.error}")
    curve = result_curve(result)

    # rebuild the model from the final checkpoint and export embeddings + weights (no pickle)
    data = load_interactions(ctx.out, "valid")
    graph = graph_for(data, cfg)
    model = build_model(graph, cfg)
    with result.checkpoint.as_directory() as d:
        state = artifacts.read_safetensors(os.path.join(d, "model.safetensors"))
    load_state_arrays(model, state)
    weights = {k: v for k, v in state.items() if k.startswith("model.")}
    users, items = embeddings(model, graph)
    artifacts.write_parquet(artifacts.join(out, "users.parquet"),
                            pa.table({"user_id": data.user_ids, "vector": artifacts.vectors_to_arrow(users)}))
    artifacts.write_parquet(artifacts.join(out, "items.parquet"),
                            pa.table({"item_id": data.item_ids, "vector": artifacts.vectors_to_arrow(items)}))
    nodes = {t: int(graph[t].num_nodes) for t in graph.node_types}
    artifacts.write_safetensors(artifacts.join(out, "model.safetensors"), weights)
    artifacts.write_json(artifacts.join(out, "model.json"), {
        "config": dataclasses.asdict(cfg), "metadata": [list(graph.node_types), [list(e) for e in graph.edge_types]],
        "num_nodes": nodes, "feature_dims": {t: int(graph[t].x.shape[1]) for t in graph.node_types if "x" in graph[t]},
        "names": {t: list(graph[t].names) for t in graph.node_types if "names" in graph[t]},
    })
    artifacts.write_json(artifacts.join(out, "curve.json"), curve)

    valid = evaluate_model(EmbeddingScorer(users, items), data, (10, 20)) if (data.target >= 0).any() else {}
    robustness = {"eps": cfg.robustness_eps, ("apr" if cfg.adversarial else "bpr"): {
        "ndcg@10": valid.get("ndcg@10"), "perturbed_ndcg@10": perturbed_ndcg(users, items, data, cfg.robustness_eps)}}
    if cfg.companion and valid:
        other = dataclasses.replace(cfg, adversarial=not cfg.adversarial)
        ctx.log(f"graph: companion model (adversarial={other.adversarial}) for the robustness check")
        m2, _, _ = fit_local(data, other, seed=ctx.config.seed, graph=graph, validate=False)
        u2, i2 = embeddings(m2, graph)
        robustness["apr" if other.adversarial else "bpr"] = {
            "ndcg@10": float(evaluate_model(EmbeddingScorer(u2, i2), data, (10,))["ndcg@10"]),
            "perturbed_ndcg@10": perturbed_ndcg(u2, i2, data, cfg.robustness_eps)}
    return {
        "nodes": nodes,
        "edges": {"/".join(e): int(graph[e].edge_index.shape[1]) for e in graph.edge_types},
        "epochs": len(curve),
        "losses": [m["loss"] for m in curve],
        "final_loss": curve[-1]["loss"] if curve else None,
        "valid": {k: v for k, v in valid.items() if k in ("hr@10", "ndcg@10", "recall@20", "ndcg@20", "mrr")},
        "valid_ndcg@10": valid.get("ndcg@10"),
        "workers": cfg.num_workers,
        "conv": cfg.conv,
        "sampling": cfg.sampling,
        "adversarial": cfg.adversarial,
        "features": "x" in graph["item"],
        "robustness": robustness,
        "seconds_per_epoch": float(np.mean([m["seconds"] for m in curve])) if curve else None,
        "checkpoint": result.checkpoint.path,
    }
