"""The ``graph`` stage: knowledge graph + GraphSAGE link prediction on Ray Train (DDP), checkpointed, resumable.

Outputs (``docs/artifacts.md``): ``users.parquet`` / ``items.parquet`` (final embeddings),
``model.safetensors`` + ``model.json``, ``curve.json`` and the summary, which includes the APR
robustness check: validation NDCG@10 with the embeddings randomly perturbed at test time, for this
model and for a companion trained in-process with the other APR setting.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from interestrec import artifacts, layout
from interestrec import train as training
from interestrec.graph.ray_train import train_loop
from interestrec.graph.train import GraphJob
from interestrec.stages import StageContext, StageError


class TrainingError(StageError, training.TrainingError):
    """Ray Train gave up on the graph model; the message names each failed worker's error."""


def train_with_ray(job: GraphJob, storage_path: str, name: str = "graphsage", max_failures: int | None = None):
    """Fit with ``TorchTrainer`` (:func:`interestrec.train.fit`) and return its ``Result``.

    ``storage_path`` is passed to Ray Train unchanged (a local directory or any pyarrow URI such as
    ``s3://bucket/runs``). A run with the same ``name`` under it resumes from its latest checkpoint
    (the worker loop reads it with ``ray.train.get_checkpoint()``); so does a worker group restarted
    after a worker dies, up to ``max_failures`` times (default ``job.graph.max_failures``).

    Raises:
        TrainingError: training failed; the message carries each failed worker's own error.
    """
    return training.fit(train_loop, job, storage_path, name, max_failures=max_failures, error=TrainingError)


def result_curve(result) -> list[dict]:
    """Per-epoch metrics of a Ray Train result, from its latest checkpoint (including resumed epochs)."""
    if result.checkpoint is None:
        return []
    state = training.read_state(result.checkpoint)
    keep = ("epoch", "loss", "seconds", "valid_ndcg@10")
    return [{k: (int(v) if k == "epoch" else float(v)) for k, v in m.items() if k in keep} for m in state.get("curve", [])]


def storage_for(ctx: StageContext) -> str:
    """Where Ray Train keeps the run: ``graph.storage_path`` as given, else ``<out>/graph/ray_train``.

    Every worker node must reach it (:func:`interestrec.train.resolve_storage`): a local default output
    on a multi-node cluster is refused with a clear error instead of failing later on a missing checkpoint.
    """
    cfg = ctx.config.graph
    default = artifacts.join(ctx.stage_dir("graph"), layout.GRAPH_RAY_TRAIN)
    return training.resolve_storage("graph", cfg.storage_path, default, out=ctx.out, num_workers=cfg.num_workers)


def input_key(ctx: StageContext) -> str:
    """A hash of the stage's inputs: the upstream stages' output hashes, or their files when no summary exists."""
    from interestrec.stages import STAGES

    hashes = []
    for up in STAGES["graph"][2]:
        s = artifacts.join(ctx.stage_dir(up), layout.SUMMARY)
        h = artifacts.read_json(s).get("_run", {}).get("output_hash") if artifacts.exists(s) else None
        if not h:
            h = training.directory_key(ctx.stage_dir(up))
        hashes.append(h)
    return artifacts.hash_config(hashes)


def run_name(ctx: StageContext) -> str:
    """``graphsage-<inputs>-<config>``: new data, a new seed or a new config start a new Ray Train run."""
    cfg = dataclasses.replace(ctx.config.graph, storage_path=None, max_failures=0)  # where/how, not what
    return training.run_name("graphsage", input_key(ctx), {"graph": cfg, "seed": ctx.config.seed})


def run(ctx: StageContext) -> dict:
    """Stage entry point (see ``interestrec.stages``)."""
    import pyarrow as pa

    from interestrec.evaluate.protocol import evaluate_model
    from interestrec.graph.train import (
        EmbeddingScorer,
        build_graph_model,
        embeddings,
        fit_local,
        perturbed_ndcg,
    )
    from interestrec.graph.training_graph import graph_for, load_interactions

    cfg = ctx.config.graph
    out = ctx.stage_dir("graph")
    job = GraphJob(graph=cfg, out=ctx.out, phase="valid", seed=ctx.config.seed)
    storage, name = storage_for(ctx), run_name(ctx)
    marker = artifacts.join(out, layout.GRAPH_TRAIN_RUN)
    if artifacts.exists(marker):
        prev = artifacts.read_json(marker)
        if prev.get("finished") and prev.get("name") == name and prev.get("storage") == storage:
            ctx.log(f"graph: run {name} already finished; training again from scratch")
            training.remove_run(storage, name)
    artifacts.write_json(marker, {"name": name, "storage": storage, "finished": False})
    result = train_with_ray(job, storage, name=name)
    curve = result_curve(result)
    if not curve:
        raise TrainingError(f"graph training under {storage}/{name} finished without a checkpoint")
    state, saved = training.read_checkpoint(result.checkpoint)
    starts = [int(e) for e in saved.get("starts", [0])]

    # rebuild the model from the final checkpoint and export embeddings + weights (no pickle)
    data = load_interactions(ctx.out, "valid")
    graph = graph_for(data, cfg)
    model = build_graph_model(graph, cfg)
    training.load_state(model, state)
    weights = {k: v for k, v in state.items() if k.startswith("model.")}
    users, items = embeddings(model, graph)
    artifacts.write_parquet(artifacts.join(out, layout.GRAPH_USERS),
                            pa.table({"user_id": data.user_ids, "vector": artifacts.vectors_to_arrow(users)}))
    artifacts.write_parquet(artifacts.join(out, layout.GRAPH_ITEMS),
                            pa.table({"item_id": data.item_ids, "vector": artifacts.vectors_to_arrow(items)}))
    nodes = {t: int(graph[t].num_nodes) for t in graph.node_types}
    artifacts.write_safetensors(artifacts.join(out, layout.GRAPH_WEIGHTS), weights)
    artifacts.write_json(artifacts.join(out, layout.GRAPH_CONFIG), {
        "config": dataclasses.asdict(cfg), "metadata": [list(graph.node_types), [list(e) for e in graph.edge_types]],
        "num_nodes": nodes, "feature_dims": {t: int(graph[t].x.shape[1]) for t in graph.node_types if "x" in graph[t]},
        "names": {t: list(graph[t].names) for t in graph.node_types if "names" in graph[t]},
    })
    artifacts.write_json(artifacts.join(out, layout.GRAPH_CURVE), curve)
    artifacts.write_json(marker, {"name": name, "storage": storage, "finished": True})

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
        "run": name,
        "storage_path": storage,
        "attempt_start_epochs": starts,
    }
