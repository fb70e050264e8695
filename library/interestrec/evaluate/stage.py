"""The ``evaluate`` stage: every registered model under one protocol, one table."""

from __future__ import annotations

import numpy as np

from interestrec.data import load_ingest
from interestrec.evaluate.base import REGISTRY, Interactions
from interestrec.evaluate.config import EvaluateConfig
from interestrec.evaluate.data import build_interactions
from interestrec.evaluate.parallel import Fit
from interestrec.evaluate.rows import runner
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


def row_result(name: str, fitted, sel, test: Interactions, cfg: EvaluateConfig, feats: np.ndarray) -> dict:
    """A row's table entry: test metrics of its refit, its params, validation record and compute seconds."""
    from interestrec.evaluate.protocol import compute_metrics

    seconds = fitted.seconds + sum(t.get("seconds", 0.0) for t in sel.tried)
    out = {**compute_metrics(fitted.ranking, test, tuple(cfg.ks), feats), "baseline": bool(REGISTRY[name].baseline),
           "params": dict(sel.params), "tuning": sel.tried, "seconds": round(seconds, 2)}
    if sel.score >= 0:
        out["valid_ndcg@10"] = sel.score
    return out


def longest_first(names: list[str], chosen: dict) -> list[str]:
    """``names`` ordered for the refits: rows without trials first (their cost is unknown), then by their
    trials' mean seconds, longest first — so the shortest refits fill the workers last."""
    def cost(n: str) -> float:
        secs = [t.get("seconds", 0.0) for t in chosen[n].tried]
        return float("inf") if not secs else sum(secs) / len(secs)
    return sorted(names, key=cost, reverse=True)


def fused_followups(results: dict, alpha: dict | None, cfg: EvaluateConfig) -> list:
    """The fused row's refit with the validation-chosen ``cold_alpha`` (when > 0) and its ablations (at the
    params it ends with), as :class:`~interestrec.evaluate.parallel.Fit` s."""
    from interestrec.evaluate.models.fused import ablation_params, ablation_rows
    from interestrec.evaluate.parallel import Fit

    if "fused" not in results:
        return []
    params = dict(results["fused"]["params"])
    fits = []
    if alpha and alpha["chosen"] > 0:  # the fused row (and what publish serves) carries the fill chosen on validation
        params["cold_alpha"] = alpha["chosen"]
        fits.append(Fit("fused", "fused", params))
    if cfg.ablations:
        fits += [Fit(row, "fused", ablation_params(params, row)) for row in ablation_rows(params)]
    return fits


def merge_followups(results: dict, rankings: dict, fits: list, fitted: dict, test: Interactions,
                    cfg: EvaluateConfig, feats: np.ndarray, log=print) -> None:
    """Put :func:`fused_followups` ' results into the table (the fused refit replaces the row's test metrics;
    its grid record and validation score are kept)."""
    from interestrec.evaluate.models.fused import ABLATIONS
    from interestrec.evaluate.protocol import compute_metrics

    for f in fits:
        got = fitted[f.name]
        m, rankings[f.name] = compute_metrics(got.ranking, test, tuple(cfg.ks), feats), got.ranking
        if f.name == "fused":
            before = results["fused"]["ndcg@10"]
            results["fused"] = {**results["fused"], **m, "params": dict(f.params), "test_ndcg@10_without_fill": before,
                                "cold_alpha_from": "the cold-item protocol's validation targets (cold_items.cold_alpha)",
                                "seconds": round(results["fused"]["seconds"] + got.seconds, 2)}
            log(f"evaluate: fused refit with cold_alpha {f.params['cold_alpha']:g}: test NDCG@10 {m['ndcg@10']:.4f} "
                f"(without the fill {before:.4f})")
        else:
            results[f.name] = {**m, "baseline": False, "params": dict(f.params), "ablation_of": "fused",
                               "removed": list(ABLATIONS[f.name]), "seconds": round(got.seconds, 2)}
            log(f"evaluate: {f.name} NDCG@10 {m['ndcg@10']:.4f}")


def run(ctx: StageContext) -> dict:
    """Stage entry point (see ``interestrec.stages``)."""
    from interestrec import artifacts, layout
    from interestrec.evaluate import cold, cold_protocol, judge
    from interestrec.evaluate.models.fused import ABLATIONS
    from interestrec.tracking import tune_callbacks

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
    rows = runner(cfg, artifacts.join(ctx.stage_dir("evaluate"), layout.EVALUATE_TUNE), ctx.log,
                  tuple(tune_callbacks(ctx.config.tracking, ctx.out)))
    skipped.update({name: "not registered" for name in cfg.models if name not in REGISTRY})
    names = [name for name in cfg.models if name in REGISTRY]
    ctx.log(f"evaluate: {len(names)} rows ({rows.kind}, {rows.workers} at once): {', '.join(names)}")
    grids = {n: cfg.row_grid(n, REGISTRY[n].grid)[: None if cfg.tune else 1] for n in names}
    chosen = rows.select(grids, valid)
    skipped.update({n: f"missing artifacts: {s.missing}" for n, s in chosen.items() if s.missing})
    pending = rows.submit([Fit(n, n, chosen[n].params) for n in longest_first(names, chosen) if not chosen[n].missing],
                          test, max(cfg.ks))
    setup, alpha = None, None
    if cfg.cold_item_share > 0:  # in the driver while the refits run
        ctx.log(f"evaluate: cold-item protocol ({cfg.cold_item_share:.0%} of items withheld)")
        setup = cold_protocol.cold_setup(valid, test, cfg.cold_item_share, cfg.cold_item_seed, art.items,
                                         ctx.config.encode.model, ctx.log, ctx.config.encode.item_description_words)
        if "fused" in chosen and not chosen["fused"].missing:
            alpha = cold_protocol.choose_cold_alpha(setup.valid, chosen["fused"].params, tuple(cfg.cold_alpha_grid),
                                                    cfg.user_chunk, cfg.bootstrap_resamples, cfg.bootstrap_seed,
                                                    ctx.log, rows.run)
    for name, got in pending.result().items():
        if got.missing:
            skipped[name] = f"missing artifacts: {got.missing}"
            continue
        results[name], rankings[name] = row_result(name, got, chosen[name], test, cfg, feats), got.ranking
        ctx.log(f"evaluate: {name} test NDCG@10 {results[name]['ndcg@10']:.4f} ({results[name]['seconds']:.0f}s)")
    results = {n: results[n] for n in names if n in results}  # the configured order
    followups = fused_followups(results, alpha, cfg)
    merge_followups(results, rankings, followups, rows.run(followups, test, max(cfg.ks)), test, cfg, feats, ctx.log)
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
            cfg.bootstrap_seed, ctx.log, rows.run)
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
            "executor": (f"Ray Tune trials and Ray tasks, {rows.workers} at once, test ranking in {rows.workers} user "
                         "shards" if rows.kind == "ray" else "one process, one row after another"),
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
