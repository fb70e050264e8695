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
from interestrec.graph.ray_train import load_state_arrays, train_loop
from interestrec.graph.train import GraphJob
from interestrec.stages import StageContext, StageError


def train_with_ray(job: GraphJob, storage_path: str, name: str = "graphsage", max_failures: int | None = None):
    """Fit with ``TorchTrainer`` and return its ``Result``.

    ``storage_path`` is passed to Ray Train unchanged (a local directory or any pyarrow URI such as
    ``s3://bucket/runs``). A run with the same ``name`` under it resumes from its latest checkpoint
    (the worker loop reads it with ``ray.train.get_checkpoint()``); so does a worker group restarted
    after a worker dies, up to ``max_failures`` times (default ``job.graph.max_failures``).

    Raises:
        TrainingError: training failed; the message carries each failed worker's own error.
    """
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig, TrainingFailedError
    from ray.train.torch import TorchTrainer

    from interestrec import progress

    cfg = job.graph
    failures = cfg.max_failures if max_failures is None else max_failures
    scaling = ScalingConfig(num_workers=cfg.num_workers, use_gpu=cfg.use_gpu,
                            resources_per_worker={"CPU": cfg.cpus_per_worker})
    with progress.ray_train_epochs("graph: epoch", cfg.epochs) as callbacks:
        run = RunConfig(name=name, storage_path=storage_path, checkpoint_config=CheckpointConfig(num_to_keep=2),
                        failure_config=FailureConfig(max_failures=failures), callbacks=callbacks or None)
        trainer = TorchTrainer(train_loop, train_loop_config=job, scaling_config=scaling, run_config=run)
        try:
            return trainer.fit()
        except TrainingFailedError as err:
            raise TrainingError(failure_message(err)) from err


class TrainingError(StageError):
    """Ray Train gave up on the graph model; the message names each failed worker's error."""


def failure_message(err: Exception) -> str:
    """The workers' own errors inside a Ray Train failure (``WorkerGroupError.worker_failures``), one per rank."""
    failures = getattr(err, "worker_failures", None) or {}
    if failures:
        lines = [f"rank {rank}: {type(e).__name__}: {e}".strip() for rank, e in sorted(failures.items())]
        return "graph training failed on " + "; ".join(lines)
    cause = getattr(err, "controller_failure", None) or err
    return f"graph training failed: {type(cause).__name__}: {cause}"


def result_curve(result) -> list[dict]:
    """Per-epoch metrics of a Ray Train result, from its latest checkpoint (including resumed epochs)."""
    if result.checkpoint is None:
        return []
    with result.checkpoint.as_directory() as d:
        state = artifacts.read_json(os.path.join(d, "state.json"))
    keep = ("epoch", "loss", "seconds", "valid_ndcg@10")
    return [{k: (int(v) if k == "epoch" else float(v)) for k, v in m.items() if k in keep} for m in state.get("curve", [])]


def storage_for(ctx: StageContext) -> str:
    """Where Ray Train keeps the run: ``graph.storage_path`` as given, else ``<out>/graph/ray_train``.

    Every worker node must reach it. The default is shared whenever the pipeline output is (object
    storage such as ``s3://``, or a shared mount); a local output on a multi-node cluster is refused
    with a clear error instead of failing later on a missing checkpoint.
    """
    cfg = ctx.config.graph
    if cfg.storage_path:
        return cfg.storage_path
    storage = artifacts.join(ctx.stage_dir("graph"), "ray_train")
    if artifacts.is_local(storage) and cfg.num_workers > 1:
        import ray

        nodes = [n for n in ray.nodes() if n.get("Alive")] if ray.is_initialized() else []
        if len(nodes) > 1:
            raise StageError(f"graph: {len(nodes)} Ray nodes but the output {ctx.out} is local; write the output to "
                             "shared storage (--out s3://...) or set graph.storage_path to a location every node reaches")
    return storage


def input_key(ctx: StageContext) -> str:
    """A hash of the stage's inputs: the upstream stages' output hashes, or their files when no summary exists."""
    from interestrec.stages import STAGES

    hashes = []
    for up in STAGES["graph"][2]:
        s = artifacts.join(ctx.stage_dir(up), "summary.json")
        h = artifacts.read_json(s).get("_run", {}).get("output_hash") if artifacts.exists(s) else None
        if not h:
            h = _content_key(ctx.stage_dir(up))
        hashes.append(h)
    return artifacts.hash_config(hashes)


def _content_key(path: str) -> str:
    """Content hash of a local directory; listing (paths, sizes, mtimes) of a remote one."""
    if artifacts.is_local(path):
        return artifacts.hash_files([path]) if artifacts.exists(path) else ""
    import pyarrow.fs as pafs

    fs, p = pafs.FileSystem.from_uri(path)
    infos = fs.get_file_info(pafs.FileSelector(p, recursive=True, allow_not_found=True))
    return artifacts.hash_config(sorted((i.path, i.size, str(i.mtime)) for i in infos if i.type == pafs.FileType.File))


def run_name(ctx: StageContext) -> str:
    """``graphsage-<inputs>-<config>``: new data, a new seed or a new config start a new Ray Train run."""
    cfg = dataclasses.replace(ctx.config.graph, storage_path=None, max_failures=0)  # where/how, not what
    return f"graphsage-{input_key(ctx)[:12]}-{artifacts.hash_config({'graph': cfg, 'seed': ctx.config.seed})[:12]}"


def _remove_run(storage: str, name: str) -> None:
    """Delete a finished run's directory (a forced re-run of the same inputs trains from scratch)."""
    import pyarrow.fs as pafs

    path = artifacts.join(storage, name)
    fs, p = pafs.FileSystem.from_uri(path) if "://" in path else (pafs.LocalFileSystem(), os.path.abspath(path))
    if fs.get_file_info(p).type == pafs.FileType.Directory:
        fs.delete_dir(p)


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
        perturbed_ndcg,
    )

    cfg = ctx.config.graph
    out = ctx.stage_dir("graph")
    job = GraphJob(graph=cfg, out=ctx.out, phase="valid", seed=ctx.config.seed)
    storage, name = storage_for(ctx), run_name(ctx)
    marker = artifacts.join(out, "train_run.json")
    if artifacts.exists(marker):
        prev = artifacts.read_json(marker)
        if prev.get("finished") and prev.get("name") == name and prev.get("storage") == storage:
            ctx.log(f"graph: run {name} already finished; training again from scratch")
            _remove_run(storage, name)
    artifacts.write_json(marker, {"name": name, "storage": storage, "finished": False})
    result = train_with_ray(job, storage, name=name)
    curve = result_curve(result)
    if not curve:
        raise TrainingError(f"graph training under {storage}/{name} finished without a checkpoint")
    with result.checkpoint.as_directory() as d:
        starts = [int(e) for e in artifacts.read_json(os.path.join(d, "state.json")).get("starts", [0])]

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
