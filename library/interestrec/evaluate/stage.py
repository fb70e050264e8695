"""The ``evaluate`` stage: every registered model under one protocol, one table."""

from __future__ import annotations

import importlib

import numpy as np

from interestrec.data import load_ingest
from interestrec.evaluate.base import REGISTRY
from interestrec.evaluate.data import build_interactions
from interestrec.evaluate.protocol import tune_and_evaluate
from interestrec.stages import StageContext

# modules that register models of ours (rows with baseline = False), imported when present
EXTRA_MODEL_MODULES = ("interestrec.evaluate.models", "interestrec.graph.recommender", "interestrec.recommend.fused")


def load_models() -> dict[str, str]:
    """Import every model module; returns ``{module: error}`` for those that could not be imported."""
    errors = {}
    for mod in EXTRA_MODEL_MODULES:
        try:
            importlib.import_module(mod)
        except ImportError as e:
            errors[mod] = str(e)
    return errors


def genre_features(items, item_ids: np.ndarray) -> np.ndarray:
    """Multi-hot genre matrix aligned with ``item_ids`` (for intra-list diversity).

    Shapes:
        returns ``(len(item_ids), n_genres)`` float32.
    """
    df = items.select(["item_id", "genres"]).to_pandas()
    vocab = sorted({g for gs in df.genres for g in (gs if gs is not None else [])})
    col = {g: j for j, g in enumerate(vocab)}
    pos = {int(i): n for n, i in enumerate(item_ids)}
    f = np.zeros((len(item_ids), max(len(vocab), 1)), np.float32)
    for i, gs in zip(df.item_id, df.genres):
        if int(i) in pos and gs is not None:
            for g in gs:
                f[pos[int(i)], col[g]] = 1.0
    return f


def run(ctx: StageContext) -> dict:
    """Stage entry point (see ``interestrec.stages``)."""
    cfg = ctx.config.evaluate
    art = load_ingest(ctx.stage_dir("ingest"))
    item_ids = np.unique(np.r_[art.items["item_id"].to_numpy(), art.events["item_id"].to_numpy()])
    valid = build_interactions(art.events, item_ids, "valid", ctx.out)
    test = build_interactions(art.events, item_ids, "test", ctx.out)
    feats = genre_features(art.items, test.item_ids)
    import_errors = load_models()
    results, skipped = {}, {}
    for name in cfg.models:
        if name not in REGISTRY:
            skipped[name] = "not registered" + (f" ({'; '.join(import_errors.values())})" if import_errors else "")
            continue
        ctx.log(f"evaluate: {name}")
        try:
            results[name] = tune_and_evaluate(REGISTRY[name], valid, test, tuple(cfg.ks), cfg.user_chunk, feats,
                                              tune=cfg.tune, log=ctx.log)
        except FileNotFoundError as e:  # a model of ours whose upstream stage has not run
            skipped[name] = f"missing artifacts: {e}"
    return {
        "models": results,
        "skipped": skipped,
        "protocol": {
            "split": "temporal leave-last-out per user (valid = second-last, test = last interaction)",
            "ranking": "full ranking over all items, history (train, +valid for test) filtered",
            "tuning": "grid on validation NDCG@10, refit on train+valid, reported on test" if cfg.tune else "first grid point",
            "users": int((test.target >= 0).sum()),
            "items": int(test.n_items),
            "ties": "broken by item index",
        },
    }
