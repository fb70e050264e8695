"""The ``graph`` stage: GraphSAGE link prediction on Ray Train (DDP), checkpointed and resumable."""

from __future__ import annotations

import numpy as np

from interestrec import artifacts
from interestrec.graph.train import GraphJob, train_loop_per_worker
from interestrec.stages import StageContext


def train_with_ray(job: GraphJob, storage_path: str, name: str = "graphsage"):
    """Fit with ``TorchTrainer``.

    Ray Train resumes a run with the same ``name`` under ``storage_path`` from its latest checkpoint
    (the worker loop reads it with ``ray.train.get_checkpoint()``), so a re-run after a failure continues
    from the last finished epoch.
    """
    from ray.train import CheckpointConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    cfg = job.graph
    run = RunConfig(name=name, storage_path=storage_path, checkpoint_config=CheckpointConfig(num_to_keep=2))
    scaling = ScalingConfig(num_workers=cfg.num_workers, use_gpu=cfg.use_gpu, resources_per_worker={"CPU": cfg.cpus_per_worker})
    return TorchTrainer(train_loop_per_worker, train_loop_config=job, scaling_config=scaling, run_config=run).fit()


def run(ctx: StageContext) -> dict:
    """Stage entry point (see ``interestrec.stages``)."""
    import os

    import pyarrow as pa

    from interestrec.data import load_ingest
    from interestrec.evaluate.data import build_interactions
    from interestrec.graph.train import build_model, embeddings, graph_inputs, load_state

    cfg = ctx.config.graph
    out = ctx.stage_dir("graph")
    job = GraphJob(graph=cfg, out=ctx.out, seed=ctx.config.seed)
    storage = cfg.storage_path or os.path.abspath(artifacts.join(out, "ray_train"))
    result = train_with_ray(job, storage, name=f"graphsage-{artifacts.hash_config(cfg)}")
    curve = [dict(m) for m in result.metrics_dataframe.to_dict("records")] if result.metrics_dataframe is not None else []
    curve = [{k: v for k, v in m.items() if k in ("epoch", "loss", "seconds", "valid_ndcg@10")} for m in curve]

    # rebuild the model from the final checkpoint and export embeddings + weights (no pickle)
    art = load_ingest(ctx.stage_dir("ingest"))
    data = build_interactions(art.events, np.unique(art.items["item_id"].to_numpy()), "valid", ctx.out)
    graph = graph_inputs(data, ctx.out)
    model = build_model(graph, cfg)
    with result.checkpoint.as_directory() as d:
        weights = artifacts.read_safetensors(os.path.join(d, "model.safetensors"))
    load_state(model, weights)
    users, items = embeddings(model, graph)
    artifacts.write_parquet(artifacts.join(out, "users.parquet"), pa.table({"user_id": data.user_ids, "vector": artifacts.vectors_to_arrow(users)}))
    artifacts.write_parquet(artifacts.join(out, "items.parquet"), pa.table({"item_id": data.item_ids, "vector": artifacts.vectors_to_arrow(items)}))
    artifacts.write_safetensors(artifacts.join(out, "model.safetensors"), weights)
    artifacts.write_json(artifacts.join(out, "model.json"), {"config": cfg, "num_nodes": {t: int(graph[t].num_nodes) for t in graph.node_types},
                                                          "feature_dims": {t: int(graph[t].x.shape[1]) for t in graph.node_types if "x" in graph[t]}})
    artifacts.write_json(artifacts.join(out, "curve.json"), curve)
    return {
        "nodes": {t: int(graph[t].num_nodes) for t in graph.node_types},
        "edges": {"/".join(e): int(graph[e].edge_index.shape[1]) for e in graph.edge_types},
        "epochs": len(curve),
        "final_loss": curve[-1]["loss"] if curve else None,
        "valid_ndcg@10": curve[-1].get("valid_ndcg@10") if curve else None,
        "workers": cfg.num_workers,
        "conv": cfg.conv,
        "adversarial": cfg.adversarial,
        "seconds_per_epoch": float(np.mean([m["seconds"] for m in curve])) if curve else None,
    }
