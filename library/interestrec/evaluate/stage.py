"""The ``evaluate`` stage: every registered model under one protocol, one table."""

from __future__ import annotations

import time

import numpy as np

from interestrec.data import load_ingest
from interestrec.evaluate.base import REGISTRY, Interactions
from interestrec.evaluate.config import EvaluateConfig
from interestrec.evaluate.data import build_interactions
from interestrec.evaluate.protocol import fit_and_rank, tune_and_rank
from interestrec.stages import StageContext, StageError


def load_models() -> dict:
    """Every row of the table, registered by the explicit imports of :mod:`interestrec.evaluate.models` (an import
    error is an error: a broken module never passes as a skipped row); returns the registry."""
    from interestrec.evaluate.models import registered

    return registered()


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


def _user_map(ingest_dir: str):
    """The ingest's user :class:`~interestrec.ids.IdMap` (identity for an output written before id maps)."""
    from interestrec import artifacts, layout
    from interestrec.ids import IdMap

    path = artifacts.join(ingest_dir, layout.INGEST_USER_IDS)
    return IdMap.from_parquet(path) if artifacts.exists(path) else IdMap.identity([])


def upstream_missing(e: FileNotFoundError) -> bool:
    """True when a row failed because an upstream stage's output is absent (the row is skipped); an artifact
    that is there but malformed is an error."""
    from interestrec.recommend.errors import ArtifactError, MissingArtifactError

    return not isinstance(e, ArtifactError) or isinstance(e, MissingArtifactError)


def refit_fused(results: dict, rankings: dict, params: dict, test: Interactions, cfg: EvaluateConfig, feats: np.ndarray,
                log=print) -> None:
    """Refit the ``fused`` row on ``test`` at ``params`` (its tuned ones plus the validation-chosen ``cold_alpha``),
    replacing its test metrics and ranks in place; the grid record and validation score are kept."""
    from interestrec.evaluate.protocol import fit_and_rank

    t0 = time.perf_counter()
    before = results["fused"]["ndcg@10"]
    m, rankings["fused"] = fit_and_rank(REGISTRY["fused"], params, test, tuple(cfg.ks), cfg.user_chunk, feats)
    results["fused"] = {**results["fused"], **m, "params": dict(params), "test_ndcg@10_without_fill": before,
                        "cold_alpha_from": "the cold-item protocol's validation targets (cold_items.cold_alpha)",
                        "seconds": round(results["fused"]["seconds"] + time.perf_counter() - t0, 2)}
    log(f"evaluate: fused refit with cold_alpha {params['cold_alpha']:g}: test NDCG@10 {m['ndcg@10']:.4f} "
        f"(without the fill {before:.4f})")


def run(ctx: StageContext) -> dict:
    """Stage entry point (see ``interestrec.stages``)."""
    from interestrec import artifacts, layout, progress
    from interestrec.evaluate import cold, cold_protocol, judge
    from interestrec.evaluate.models.fused import ABLATIONS, ablation_params, ablation_rows

    cfg = ctx.config.evaluate
    art = load_ingest(ctx.stage_dir("ingest"))
    item_ids = np.unique(np.r_[art.items["item_id"].to_numpy(), art.events["item_id"].to_numpy()])
    valid = build_interactions(art.events, item_ids, "valid", ctx.out, ctx.config)
    test = build_interactions(art.events, item_ids, "test", ctx.out, ctx.config)
    feats = genre_features(art.items, test.item_ids)
    load_models()
    unknown = sorted((set(cfg.grids) | set(cfg.params)) - set(REGISTRY))
    if unknown:
        raise StageError(f"evaluate.grids/params name unknown row(s) {unknown}; rows: {sorted(REGISTRY)}")
    results, skipped, rankings = {}, {}, {}
    rows = progress.Progress("evaluate: rows", total=len(cfg.models), unit="row", every=0.0)
    for name in cfg.models:
        if name not in REGISTRY:
            skipped[name] = "not registered"
            continue
        ctx.log(f"evaluate: {name}")
        try:
            results[name], rankings[name] = tune_and_rank(REGISTRY[name], valid, test, tuple(cfg.ks), cfg.user_chunk,
                                                          feats, tune=cfg.tune, log=ctx.log,
                                                          grid=cfg.row_grid(name, REGISTRY[name].grid))
            rows.update(note=f"{name} test NDCG@10 {results[name]['ndcg@10']:.4f} in {results[name]['seconds']:.0f}s")
        except FileNotFoundError as e:
            if not upstream_missing(e):
                raise
            skipped[name] = f"missing artifacts: {e}"
            rows.update(note=f"{name} skipped")
    setup, alpha = None, None
    if cfg.cold_item_share > 0:
        ctx.log(f"evaluate: cold-item protocol ({cfg.cold_item_share:.0%} of items withheld)")
        setup = cold_protocol.cold_setup(valid, test, cfg.cold_item_share, cfg.cold_item_seed, art.items,
                                         ctx.config.encode.model, ctx.log)
        if "fused" in results:
            alpha = cold_protocol.choose_cold_alpha(setup.valid, results["fused"]["params"], tuple(cfg.cold_alpha_grid),
                                                    cfg.user_chunk, cfg.bootstrap_resamples, cfg.bootstrap_seed, ctx.log)
            if alpha["chosen"] > 0:  # the fused row (and what publish serves) carries the fill chosen on validation
                refit_fused(results, rankings, {**results["fused"]["params"], "cold_alpha": alpha["chosen"]}, test, cfg,
                            feats, ctx.log)
    if cfg.ablations and "fused" in results:
        for row in ablation_rows(results["fused"]["params"]):
            t0 = time.perf_counter()
            params = ablation_params(results["fused"]["params"], row)
            m, rankings[row] = fit_and_rank(REGISTRY["fused"], params, test, tuple(cfg.ks), cfg.user_chunk, feats)
            results[row] = {**m, "baseline": False, "params": params, "ablation_of": "fused",
                            "removed": list(ABLATIONS[row]), "seconds": round(time.perf_counter() - t0, 2)}
            ctx.log(f"evaluate: {row} NDCG@10 {m['ndcg@10']:.4f} (fused {results['fused']['ndcg@10']:.4f})")
    ranks_dir = artifacts.join(ctx.stage_dir("evaluate"), layout.EVALUATE_RANKS)
    users_map = _user_map(ctx.stage_dir("ingest"))
    for name, r in rankings.items():  # the files speak the data's original user ids
        judge.write_ranks(artifacts.join(ranks_dir, f"{name}.parquet"), users_map.to_original(test.user_ids[r.users]),
                          r.rank)
    by_user = {name: dict(zip(test.user_ids[r.users].tolist(), r.rank.tolist())) for name, r in rankings.items()}
    judged = judge.comparisons(results, by_user, [a for a in ABLATIONS if a in results], cfg.bootstrap_resamples,
                               cfg.bootstrap_seed)
    for name, c in judged["vs_best_baseline"].items():
        results[name]["vs_best_baseline"] = c
    for name, c in judged["fused_vs_ablation"].items():
        results[name]["fused_minus_this"] = c
    cold_items = None
    if setup is not None:
        cold_items, cold_rankings = cold_protocol.judge_cold_items(
            setup, results, tuple(cfg.cold_item_models), cfg.ablations, cfg.user_chunk, cfg.bootstrap_resamples,
            cfg.bootstrap_seed, ctx.log)
        cold_items["cold_alpha"] = alpha
        cold_dir = artifacts.join(ctx.stage_dir("evaluate"), layout.EVALUATE_COLD_RANKS)
        for name, r in cold_rankings.items():
            judge.write_ranks(artifacts.join(cold_dir, f"{name}.parquet"), users_map.to_original(test.user_ids[r.users]),
                              r.rank, cold=cold.cold_targets(setup.test, r.users))
    cold_users = cold.cold_user_slice(test, rankings, cfg.cold_user_max_events)
    goals = judge.goals(results, judged, cold_items)
    for line in judge.goal_lines(goals):
        ctx.log(f"evaluate: {line}")
    return {
        "models": results,
        "skipped": skipped,
        "comparisons": judged,
        "cold_items": cold_items,
        "cold_users": cold_users,
        "goals": goals,
        "ranks": {"dir": layout.rel(layout.EVALUATE, layout.EVALUATE_RANKS), "phase": "test",
                  "rows": sorted(rankings),
                  "cold_dir": layout.rel(layout.EVALUATE, layout.EVALUATE_COLD_RANKS) if cold_items else None,
                  "cold_rows": sorted((cold_items or {}).get("models", {}))},
        "protocol": {
            "split": "temporal leave-last-out per user (valid = second-last, test = last interaction)",
            "ranking": "full ranking over all items, history (train, +valid for test) filtered",
            "tuning": "grid on validation NDCG@10, refit on train+valid, reported on test" if cfg.tune else "first grid point",
            "ablations": "the fused row refit at its tuned params with the named terms' weights set to 0 (no re-tuning)",
            "cold_alpha": ("the fused row's text fill for cold items, chosen on the cold-item protocol's validation "
                           "targets (evaluate.cold_alpha_grid), then refit on train+valid" if alpha else "not tuned"),
            "intervals": f"paired percentile bootstrap over users, {cfg.bootstrap_resamples} resamples, seed "
                         f"{cfg.bootstrap_seed}, 95%, per-user NDCG@10 from the ranks files",
            "best_baseline": judge.BEST_BASELINE_RULE,
            "users": int((test.target >= 0).sum()),
            "items": int(test.n_items),
            "ties": "broken by item index",
        },
    }
