"""The ``adapt`` stage: self-supervised domain adaptation of the text encoder on Ray Train (DDP).

Pairs come from the ingest stage's *train* split only (``interestrec.adapt.pairs``); item text is
leak-free (title, year, genres). Outputs (``docs/artifacts.md``) under ``DIR/adapt/``:

- ``items_frozen.parquet``: the base model's vectors of every catalog item's leak-free text;
- ``model/`` (objective ``contrastive``/``both``): the adapted transformer (LoRA merged) + tokenizer,
  safetensors — set ``encode.model`` to this directory to encode with it — and ``items_adapted.parquet``;
- ``projection/model.safetensors`` + ``model.json`` (objective ``projection``/``both``) and
  ``items_projection.parquet``;
- ``pairs_<objective>.parquet`` / ``items.parquet`` (the training inputs) and ``ray_train/`` (checkpoints).

Every catalog item gets a vector, interacted with or not (content only): cold items included.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile

import numpy as np

from interestrec import artifacts, layout
from interestrec import train as training
from interestrec.adapt.config import AdaptConfig
from interestrec.adapt.train import AdaptJob
from interestrec.stages import StageContext, StageError
from interestrec.train import read_checkpoint  # also imported from here (tests/test_gpu.py)


class AdaptTrainingError(StageError, training.TrainingError):
    """Training failed on Ray Train; the message names each failed worker's error, by rank."""


def run_name(job: AdaptJob, input_hash: str) -> str:
    """Ray Train run name keyed by the training inputs and the config: new data or config → a new run.

    The same inputs and config give the same name, so a run interrupted mid-way resumes from its last
    checkpoint (and a finished one is reused: training is deterministic given both).
    """
    config = {"adapt": dataclasses.asdict(job.adapt), "objective": job.objective}
    return training.run_name(f"adapt-{job.objective}", input_hash, config)


def storage_path(cfg: AdaptConfig, out: str) -> str:
    """``cfg.storage_path`` unchanged when set (local dir or URI), else ``DIR/adapt/ray_train``.

    A local default for several workers on a multi-node cluster is refused
    (:func:`interestrec.train.resolve_storage`).
    """
    return training.resolve_storage("adapt", cfg.storage_path, artifacts.join(out, layout.ADAPT_RAY_TRAIN), out=out,
                                    num_workers=cfg.num_workers)


def train_with_ray(job: AdaptJob, storage: str, name: str, callbacks: tuple = ()):
    """Fit with ``TorchTrainer`` (:func:`interestrec.train.fit`) and return its ``Result``.

    A run with the same ``name`` under ``storage`` resumes from its latest checkpoint; a worker that
    dies is replaced up to ``max_failures`` times, resuming from the latest checkpoint too.

    Raises:
        AdaptTrainingError: training failed (each failed worker's error, by rank) or left no checkpoint.
    """
    from interestrec.adapt.train import train_loop

    return training.fit(train_loop, job, storage, name, callbacks=callbacks, error=AdaptTrainingError)


def export_transformer(job: AdaptJob, arrays: dict[str, np.ndarray], dest: str) -> None:
    """Write the adapted transformer (LoRA merged) + tokenizer as a model directory (safetensors)."""
    from interestrec.adapt.train import build_adapt_model
    from interestrec.encode.encoder import load_tokenizer

    tower = build_adapt_model(job)
    training.load_state(tower, arrays)
    model = tower.transformer
    if hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
    with tempfile.TemporaryDirectory() as d:
        model.save_pretrained(d, safe_serialization=True)
        load_tokenizer(job.model_path).save_pretrained(d)
        _publish_dir(d, dest)


def _publish_dir(src: str, dest: str) -> None:
    """Copy a finished local directory to ``dest`` (local: swapped in by rename; URI: pyarrow copy)."""
    import shutil

    if artifacts.is_local(dest):
        tmp = f"{dest}.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(src, tmp)
        shutil.rmtree(dest, ignore_errors=True)
        os.replace(tmp, dest)
    else:
        import pyarrow.fs as pafs

        pafs.copy_files(src, dest)


def vectors_table(ids: np.ndarray, vectors: np.ndarray):
    """``item_id, vector`` table."""
    import pyarrow as pa

    return pa.table({"item_id": pa.array(ids, pa.int64()), "vector": artifacts.vectors_to_arrow(vectors)})


def encode_texts(model: str | None, texts: list[str], cfg: AdaptConfig) -> np.ndarray:
    """The encode stage's encoder over ``texts`` (same tokenisation, pooling and L2)."""
    from interestrec.encode.encoder import TextEncoder

    enc = TextEncoder(model, device="cuda" if cfg.use_gpu else "cpu", max_length=cfg.max_tokens,
                      num_threads=max(1, os.cpu_count() or 1))
    return enc.encode(texts, cfg.encode_batch)


def inputs_hash(pairs, ids: np.ndarray, texts: list[str]) -> str:
    """Content hash of the training inputs (pairs, item ids and texts).

    Shapes:
        pairs.anchor / pairs.positive: ``(p,)``; ids: ``(n_items,)``; texts: ``n_items`` strings.
    """
    return training.content_key((pairs.anchor, pairs.positive, ids), texts)


def curve_summary(state: dict) -> dict:
    """Epochs, losses and seconds per epoch from a final checkpoint's ``state.json``."""
    curve = state["curve"]
    return {"epochs": len(curve), "losses": [round(m["loss"], 5) for m in curve],
            "first_batch_loss": round(curve[0]["first_batch_loss"], 5),
            "seconds_per_epoch": [round(m["seconds"], 3) for m in curve],
            "pairs_per_worker": curve[-1]["pairs"], "resumed_from": state.get("resumed_from", 0)}


def run(ctx: StageContext) -> dict:
    """Stage entry point (see ``interestrec.stages``)."""
    import pyarrow as pa

    from interestrec.adapt.pairs import leak_free_texts, pairs_from_ingest, to_table
    from interestrec.data import load_ingest
    from interestrec.encode.encoder import model_path

    cfg = ctx.config.adapt
    out = ctx.stage_dir("adapt")
    art = load_ingest(ctx.stage_dir("ingest"))
    ids, texts = leak_free_texts(art.items)
    objectives = [o for o, on in (("projection", cfg.trains_projection), ("contrastive", cfg.trains_transformer)) if on]
    pairs = {o: pairs_from_ingest(art.events, cfg.pair_kinds, cfg.context_items, cfg.schedule(o)[0], cfg.seed)
             for o in objectives}
    for p in pairs.values():
        if len(p) < 2 * cfg.num_workers:
            raise StageError(f"adapt: only {len(p)} training pairs from the train split "
                             f"(need >= {2 * cfg.num_workers}); is the ingest split empty?")
    base = model_path(cfg.base_model)
    ctx.log(f"adapt: {', '.join(f'{o} {len(p)} pairs' for o, p in pairs.items())}; encoding {len(ids)} items "
            "with the base model")
    frozen = encode_texts(base, texts, cfg)
    artifacts.write_parquet(artifacts.join(out, layout.ADAPT_ITEMS_FROZEN), vectors_table(ids, frozen))
    items_path = artifacts.join(out, layout.ADAPT_ITEMS)
    artifacts.write_parquet(items_path, pa.table({"item_id": pa.array(ids, pa.int64()), "text": texts,
                                                  "vector": artifacts.vectors_to_arrow(frozen)}))
    for name, on in ((layout.ADAPT_ITEMS_PROJECTION, cfg.trains_projection),
                     (layout.ADAPT_ITEMS_ADAPTED, cfg.trains_transformer)):
        if not on and artifacts.is_local(out) and os.path.exists(artifacts.join(out, name)):
            os.remove(artifacts.join(out, name))  # a previous run's other objective must not be evaluated as current
    storage = storage_path(cfg, out)
    summary: dict = {"items": len(ids), "objective": cfg.objective, "workers": cfg.num_workers,
                     "base_model": cfg.base_model or "all-MiniLM-L6-v2 (packaged)", "storage_path": storage}
    for objective in objectives:
        pairs_path = artifacts.join(out, layout.ADAPT_PAIRS.format(objective=objective))
        artifacts.write_parquet(pairs_path, to_table(pairs[objective]))
        job = AdaptJob(adapt=cfg, objective=objective, pairs_path=pairs_path, items_path=items_path, model_path=base)
        name = run_name(job, inputs_hash(pairs[objective], ids, texts))
        ctx.log(f"adapt: training {objective} on Ray Train ({cfg.num_workers} worker(s)), run {name}")
        result = train_with_ray(job, storage, name)
        arrays, state = read_checkpoint(result.checkpoint)
        kinds = pairs[objective].kind
        part = {**curve_summary(state), "pairs": len(kinds), "run_name": name, "checkpoint": result.checkpoint.path,
                "pair_kinds": {k: int((kinds == k).sum()) for k in cfg.pair_kinds}}
        if objective == "projection":
            part.update(_export_projection(cfg, arrays, ids, frozen, out))
        else:
            dest = artifacts.join(out, layout.ADAPT_MODEL)
            export_transformer(job, arrays, dest)
            adapted = encode_texts(dest, texts, cfg)
            artifacts.write_parquet(artifacts.join(out, layout.ADAPT_ITEMS_ADAPTED), vectors_table(ids, adapted))
            part.update({"model_dir": dest, "lora_r": cfg.lora_r,
                         "mean_cosine_to_base": float(np.mean(np.sum(adapted * frozen, axis=1)))})
        summary[objective] = part
    return summary


def _export_projection(cfg: AdaptConfig, arrays: dict[str, np.ndarray], ids: np.ndarray, frozen: np.ndarray,
                       out: str) -> dict:
    """Write the projection MLP (safetensors + json) and the projected catalog vectors."""
    import torch

    from interestrec.adapt.model import Projection

    weights = {k[len("model."):]: v for k, v in arrays.items() if k.startswith("model.")}
    model = Projection(frozen.shape[1], cfg.hidden)
    model.load_state_dict({k: torch.as_tensor(v) for k, v in weights.items()})
    with torch.no_grad():
        projected = model.project(torch.as_tensor(frozen)).numpy().astype(np.float32)
    artifacts.write_safetensors(artifacts.join(out, layout.ADAPT_PROJECTION_WEIGHTS), weights)
    artifacts.write_json(artifacts.join(out, layout.ADAPT_PROJECTION_CONFIG),
                         {"dim": int(frozen.shape[1]), "hidden": cfg.hidden, "activation": "gelu",
                          "form": "normalise(x + down(gelu(up(x))))", "config": dataclasses.asdict(cfg)})
    artifacts.write_parquet(artifacts.join(out, layout.ADAPT_ITEMS_PROJECTION), vectors_table(ids, projected))
    return {"projection_dir": artifacts.join(out, layout.ADAPT_PROJECTION)}
