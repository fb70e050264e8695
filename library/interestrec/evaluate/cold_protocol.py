"""The cold-item protocol: the fused row's text fill chosen on validation, every row judged on all / warm / cold.

1. **Setup** (:func:`cold_setup`): a seeded share of the items is made cold — every interaction of theirs a
   phase trains on is withheld (valid phase: train; test phase: train + valid), so they remain only as
   held-out targets, split between validation (users whose valid item is cold) and test (users whose test
   item is cold). Their vectors are re-encoded from catalogue-only text; graph embeddings are not used.
2. **Selection on validation** (:func:`choose_cold_alpha`): the fused row at its main-table params, for each
   ``cold_alpha`` of the grid (the seq table's text fill, :mod:`interestrec.recommend.coldfill`), is fitted
   on the withheld valid phase and ranks every validation target; the rule :data:`ALPHA_RULE` picks one. Test
   targets are never read.
3. **Judging on test** (:func:`judge_cold_items`): each row (and the fused row's ablations) refit on the
   withheld test phase at its validation-tuned params ranks every test user's target over all items;
   Recall@20 / NDCG@20 / NDCG@10 on all, warm and cold targets, with paired bootstrap intervals of ``fused``
   minus each other row per split.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from interestrec.evaluate import metrics
from interestrec.evaluate.base import REGISTRY, Interactions
from interestrec.evaluate.cold import choose_cold_items, cold_targets, withhold_items
from interestrec.evaluate.parallel import Fit, Fitted, run_local

Runner = Callable[[list[Fit], Interactions, int], dict[str, Fitted]]
"""Runs fits and rankings: ``(fits, data, k_max) → result row → Fitted`` (``RowRunner.run`` or the local one)."""

ALPHA_RULE = ("the cold_alpha with the highest validation Recall@20 on cold targets among those whose validation "
              "NDCG@10 on warm targets is not significantly below cold_alpha = 0's (the paired bootstrap interval of "
              "the difference reaches 0); ties: the smaller cold_alpha")
SPLITS = ("all", "warm", "cold")
PROTOCOL = ("every train (+valid) interaction of the cold items withheld; every user's target ranked over all items, "
            "judged on all / warm / cold targets; the fused row's cold_alpha chosen on validation cold-protocol "
            "targets, rows refit at their validation-tuned params; cold items' text from catalogue fields only; "
            "graph embeddings not used")


@dataclass(frozen=True)
class ColdSetup:
    """Both evaluation phases with the same cold items withheld.

    Shapes:
        cold: ``(c,)`` item indices, sorted.
    """

    cold: np.ndarray
    valid: Interactions
    test: Interactions
    share: float
    seed: int
    withheld_events: int
    vectors: str  # where the phases' item vectors come from


def cold_setup(valid: Interactions, test: Interactions, share: float, seed: int, items=None,
               encode_model: str | None = None, log=print, description_words: int = 0) -> ColdSetup:
    """Withhold a seeded ``share`` of the items from both phases; with ``items`` (the ingest catalogue) and
    pipeline artifacts, the cold items' vectors are re-encoded once from content-only text (with the
    encode stage's ``description_words``)."""
    from interestrec.evaluate.cold import content_only_vectors, encode_content_only

    if valid.n_items != test.n_items or not np.array_equal(valid.item_ids, test.item_ids):
        raise ValueError("cold_setup: the valid and test phases must share one item index")
    cold = choose_cold_items(test.n_items, share, seed)
    v, t = withhold_items(valid, cold), withhold_items(test, cold)
    source = "the phases' own item vectors (no catalogue to re-encode the cold items from)"
    if t.artifacts is not None:
        v, t = (dataclasses.replace(d, extras={**d.extras, "no_graph": True}) for d in (v, t))
    if t.artifacts is not None and items is not None:
        t0 = time.perf_counter()
        try:
            enc = encode_content_only(items, t.item_ids, cold, encode_model, description_words) if len(cold) else None
            vecs = [content_only_vectors(d.artifacts, items, d.item_ids, cold, encode_model, d.phase, enc) for d in (v, t)]
        except FileNotFoundError as e:  # no encode stage output: the rows that need vectors are skipped, named
            source = f"none: {e}"
            log(f"evaluate: cold items: no content-only vectors ({e})")
        else:
            v, t = (dataclasses.replace(d, extras={**d.extras, "item_vectors": x}) for d, x in zip((v, t), vecs))
            source = "each phase's leak-free vectors, the cold items re-encoded from catalogue fields only"
            log(f"evaluate: cold items: {len(cold)} items re-encoded from content only in {time.perf_counter() - t0:.1f}s")
    return ColdSetup(cold=cold, valid=v, test=t, share=float(share), seed=int(seed),
                     withheld_events=int(len(test.seq_item) - len(t.seq_item)), vectors=source)


def split_counts(data: Interactions) -> dict[str, int]:
    """Users with a target in ``data``, all / warm / cold (``all = warm + cold``)."""
    users = np.flatnonzero(data.target >= 0)
    cold = int(cold_targets(data, users).sum())
    return {"all": int(len(users)), "warm": int(len(users) - cold), "cold": cold}


def split_metrics(rank: np.ndarray, is_cold: np.ndarray) -> dict[str, dict]:
    """Recall@20, NDCG@20, NDCG@10 and users on all, warm and cold targets.

    Shapes:
        rank, is_cold: ``(m,)`` (0-based ranks; whether each user's target is cold).
    """
    out = {}
    for name, sel in (("all", np.ones(len(rank), bool)), ("warm", ~is_cold), ("cold", is_cold)):
        r = rank[sel]
        out[name] = {"recall@20": metrics.recall(r, 20), "ndcg@20": metrics.ndcg(r, 20), "ndcg@10": metrics.ndcg(r, 10),
                     "users": int(sel.sum())}
    return out


def choose_cold_alpha(valid: Interactions, params: dict, grid: tuple[float, ...], user_chunk: int = 1024,
                      n_resamples: int = 2000, seed: int = 0, log=print, run: Runner | None = None) -> dict:
    """Pick the fused row's ``cold_alpha`` on the withheld valid phase by :data:`ALPHA_RULE` (0 is always tried).

    The rule is the issue's goal read on validation: more cold targets reached, warm targets not significantly
    worse than without the fill.

    Args:
        valid: the valid phase with the cold items withheld (:func:`cold_setup`); only its targets are read.
        params: the fused row's main-table params (every other param is kept).
        grid: the ``cold_alpha`` values tried.
        n_resamples / seed: the paired bootstrap of warm NDCG@10 against ``cold_alpha = 0``.
        run: runs the fits and rankings (``RowRunner.run``: Ray tasks); default in this process.

    Returns:
        ``{"chosen", "rule", "grid", "tried": [{"cold_alpha", "all", "warm", "cold", "warm_ndcg@10_vs_0",
        "eligible"}], "users"}``.
    """
    from interestrec.evaluate.judge import ndcg_per_user, paired_bootstrap

    alphas = sorted({0.0, *(float(a) for a in grid)})
    run = run or functools.partial(run_local, user_chunk=user_chunk)
    fitted = run([Fit(f"cold_alpha={a:g}", "fused", {**params, "cold_alpha": a}) for a in alphas], valid, 20)
    tried, zero = [], None
    for alpha in alphas:
        r = fitted[f"cold_alpha={alpha:g}"].ranking
        is_cold = cold_targets(valid, r.users)
        m = split_metrics(r.rank, is_cold)
        warm = ndcg_per_user(r.rank[~is_cold], 10)
        zero = warm if zero is None else zero  # alphas are sorted: 0 comes first
        iv = paired_bootstrap(warm, zero, n_resamples, seed)
        tried.append({"cold_alpha": alpha, **{s: {k: round(v, 5) for k, v in m[s].items() if k != "users"}
                                              for s in SPLITS},
                      "warm_ndcg@10_vs_0": {k: round(v, 5) if isinstance(v, float) else v for k, v in iv.items()},
                      "eligible": bool(iv["high"] >= 0)})
        log(f"evaluate: cold_alpha {alpha:g}: valid NDCG@10 all {m['all']['ndcg@10']:.4f} warm "
            f"{m['warm']['ndcg@10']:.4f} (vs 0: {iv['diff']:+.4f} [{iv['low']:+.4f}, {iv['high']:+.4f}]), "
            f"cold Recall@20 {m['cold']['recall@20']:.4f}")
    best = max((t for t in tried if t["eligible"]), key=lambda t: (t["cold"]["recall@20"], -t["cold_alpha"]))
    log(f"evaluate: cold_alpha {best['cold_alpha']:g} chosen on validation ({ALPHA_RULE})")
    return {"chosen": best["cold_alpha"], "rule": ALPHA_RULE, "grid": alphas, "tried": tried,
            "users": split_counts(valid)}


def _per_user(rank: np.ndarray) -> dict[str, np.ndarray]:
    from interestrec.evaluate.judge import ndcg_per_user

    return {"ndcg@10": ndcg_per_user(rank, 10), "recall@20": (rank < 20).astype(np.float64)}


def fused_intervals(ranks: dict[str, np.ndarray], is_cold: np.ndarray, n_resamples: int = 2000,
                    seed: int = 0) -> dict[str, dict]:
    """Paired bootstrap intervals of ``fused`` minus every other row, per split and metric (NDCG@10, Recall@20).

    Args:
        ranks: row → per-user ranks, every row over the same users in the same order.

    Returns:
        ``{row: {split: {metric: interval}}}`` (intervals as :func:`~interestrec.evaluate.judge.paired_bootstrap`).
    """
    from interestrec.evaluate.judge import paired_bootstrap

    if "fused" not in ranks:
        return {}
    sels = {"all": np.ones(len(is_cold), bool), "warm": ~is_cold, "cold": is_cold}
    ours = _per_user(ranks["fused"])
    out = {}
    for row, rank in ranks.items():
        if row == "fused":
            continue
        theirs = _per_user(rank)
        out[row] = {s: {k: {"a": "fused", "b": row, "metric": k, **paired_bootstrap(ours[k][sel], theirs[k][sel],
                                                                                        n_resamples, seed)}
                        for k in ours} for s, sel in sels.items()}
    return out


def best_collaborative(rows: list[str], main: dict[str, dict]) -> str | None:
    """The baseline row among ``rows`` with the highest main-table test NDCG@10 (the main table's rule, so the
    opponent is not chosen on cold targets)."""
    base = [(float(main.get(r, {}).get("ndcg@10") or 0.0), r) for r in rows
            if r in REGISTRY and REGISTRY[r].baseline]
    return max(base)[1] if base else None


def judge_cold_items(setup: ColdSetup, main: dict[str, dict], rows: tuple[str, ...], ablations: bool = True,
                     user_chunk: int = 1024, n_resamples: int = 2000, seed: int = 0, log=print,
                     run: Runner | None = None) -> tuple[dict, dict]:
    """Refit ``rows`` (plus the fused row's ablations) on the withheld test phase; all / warm / cold metrics.

    Rows not registered, or whose inputs are missing, are reported under ``skipped`` with the reason. ``run``:
    as in :func:`choose_cold_alpha`.

    Returns:
        ``(summary, rankings)``: the ``cold_items`` summary (without ``cold_alpha``) and row →
        :class:`~interestrec.evaluate.protocol.Ranking` on ``setup.test``.
    """
    from interestrec.evaluate.models.fused import ablation_params, ablation_rows

    data = setup.test
    todo = [(name, name, None) for name in rows]
    if ablations and "fused" in rows and "fused" in REGISTRY:
        tuned = main["fused"]["params"] if "fused" in main else REGISTRY["fused"].grid[0]
        todo += [(row, "fused", ablation_params(tuned, row)) for row in ablation_rows(tuned)]
    targets = split_counts(data)
    out = {"share": setup.share, "seed": setup.seed, "items": int(len(setup.cold)), "users": targets["cold"],
           "withheld_events": setup.withheld_events, "targets": targets, "models": {}, "skipped": {},
           "protocol": PROTOCOL, "vectors": setup.vectors}
    rankings, fits, origin = {}, [], {}
    for name, reg, params in todo:
        if reg not in REGISTRY:
            out["skipped"][name] = "not registered"
            continue
        from_main = params is None and name in main
        params = params if params is not None else main[name]["params"] if from_main else REGISTRY[reg].grid[0]
        fits.append(Fit(name, reg, dict(params)))
        origin[name] = from_main
    fitted = (run or functools.partial(run_local, user_chunk=user_chunk))(fits, data, 20)
    for f in fits:
        name, reg, params, cls = f.name, f.row, f.params, REGISTRY[f.row]
        from_main, ranking = origin[name], fitted[name].ranking
        if fitted[name].missing:
            out["skipped"][name] = f"missing artifacts: {fitted[name].missing}"
            continue
        rankings[name] = ranking
        m = split_metrics(ranking.rank, cold_targets(data, ranking.users))
        out["models"][name] = {"recall@20": m["cold"]["recall@20"], "ndcg@20": m["cold"]["ndcg@20"],
                               "users": m["cold"]["users"], **m, "baseline": bool(cls.baseline),
                               "params": dict(params),
                               "params_from": ("the fused row's params, ablated" if reg != name else
                                               "main table" if from_main else "first grid point"),
                               "seconds": round(fitted[name].seconds, 2)}
        if reg != name:
            out["models"][name]["ablation_of"] = "fused"
        log(f"evaluate: cold items {name}: Recall@20 cold {m['cold']['recall@20']:.4f}, NDCG@10 warm "
            f"{m['warm']['ndcg@10']:.4f}, all {m['all']['ndcg@10']:.4f}")
    users = [r.users for r in rankings.values()]
    if any(not np.array_equal(u, users[0]) for u in users):
        raise ValueError("cold-item protocol: rows ranked different users")
    is_cold = cold_targets(data, users[0]) if users else np.zeros(0, bool)
    out["fused_vs"] = fused_intervals({n: r.rank for n, r in rankings.items()}, is_cold, n_resamples, seed)
    out["best_collaborative"] = best_collaborative(list(out["models"]), main)
    out["chance_recall@20"] = 20.0 / max(data.n_items - 1, 1)
    return out, rankings


def cold_item_protocol(valid: Interactions, test: Interactions, main: dict[str, dict], rows: tuple[str, ...],
                       share: float, seed: int, items=None, encode_model: str | None = None,
                       alpha_grid: tuple[float, ...] = (0.0,), ablations: bool = True, user_chunk: int = 1024,
                       n_resamples: int = 2000, bootstrap_seed: int = 0, log=print) -> dict:
    """The whole protocol: :func:`cold_setup`, ``cold_alpha`` chosen on validation (when ``fused`` is among
    ``rows``; merged into its params) and :func:`judge_cold_items`; returns the ``cold_items`` summary."""
    setup = cold_setup(valid, test, share, seed, items, encode_model, log)
    main = dict(main)
    choice = None
    if "fused" in rows and "fused" in REGISTRY:
        params = main["fused"]["params"] if "fused" in main else REGISTRY["fused"].grid[0]
        choice = choose_cold_alpha(setup.valid, params, alpha_grid, user_chunk, n_resamples, bootstrap_seed, log)
        main["fused"] = {**main.get("fused", {}), "params": {**params, "cold_alpha": choice["chosen"]}}
    out, _ = judge_cold_items(setup, main, rows, ablations, user_chunk, n_resamples, bootstrap_seed, log)
    return {**out, "cold_alpha": choice}
