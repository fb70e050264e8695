"""Judging small differences: per-user ranks files, paired bootstrap intervals, comparisons and goal ratios.

Every row of the table ranks the same test users, so two rows are compared *paired*: per-user NDCG@10
differences, resampled over users (:func:`paired_bootstrap`). The best baseline is the row with
``baseline = True`` that has the highest **test** NDCG@10 (the strongest opponent the table has; choosing it
on test can only favour the baseline).
"""

from __future__ import annotations

import numpy as np

from interestrec import artifacts

BEST_BASELINE_RULE = "the baseline=True row with the highest test NDCG@10"


def write_ranks(path: str, user_ids, rank: np.ndarray, cold: np.ndarray | None = None) -> None:
    """Write one row's per-user ranks (``user_id`` the data's original id, ``rank`` 0-based) atomically.

    ``user_ids`` are original ids: ints (an int64 column) or strings (a string column); ``cold`` (the
    cold-item protocol's files) adds a bool column: whether the user's target is a cold item.

    Shapes:
        user_ids, rank, cold: ``(m,)``.
    """
    import pyarrow as pa

    ids = list(user_ids)
    col = (pa.array([str(u) for u in ids], pa.string()) if any(isinstance(u, str) for u in ids)
           else pa.array(np.asarray(ids, np.int64), pa.int64()))
    cols = {"user_id": col, "rank": pa.array(np.asarray(rank, np.int64))}
    if cold is not None:
        cols["cold"] = pa.array(np.asarray(cold, bool))
    table = pa.table(cols)
    artifacts.write_parquet(path, table)


def read_ranks(path: str) -> dict[int | str, int]:
    """``{user_id: rank}`` from a ranks file."""
    t = artifacts.read_parquet(path)
    return dict(zip(t["user_id"].to_pylist(), t["rank"].to_numpy().tolist()))


def ndcg_per_user(rank: np.ndarray, k: int = 10) -> np.ndarray:
    """Per-user NDCG@k of a single held-out item: ``1 / log2(rank + 2)`` inside the top k, else 0.

    Shapes:
        rank: ``(m,)`` 0-based; returns ``(m,)`` float64.
    """
    r = np.asarray(rank, np.float64)
    return np.where(r < k, 1.0 / np.log2(r + 2.0), 0.0)


def paired_bootstrap(a: np.ndarray, b: np.ndarray, n_resamples: int = 2000, seed: int = 0,
                     level: float = 0.95) -> dict:
    """Percentile bootstrap interval of ``mean(a) - mean(b)`` over paired per-user values.

    Users are resampled with replacement ``n_resamples`` times (seeded); the interval is the
    ``(1 - level) / 2`` and ``(1 + level) / 2`` quantiles of the resampled mean differences.

    Shapes:
        a, b: ``(m,)``, the same users in the same order.

    Returns:
        ``{"diff", "low", "high", "users", "resamples"}``.
    """
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"paired values need equal 1-d shapes, got {a.shape} and {b.shape}")
    d = a - b
    m = len(d)
    if m == 0:
        return {"diff": 0.0, "low": 0.0, "high": 0.0, "users": 0, "resamples": int(n_resamples)}
    rng = np.random.default_rng(seed)
    means = np.empty(n_resamples)
    for lo in range(0, n_resamples, 256):  # bounded memory: 256 resamples × m indices at a time
        n = min(256, n_resamples - lo)
        means[lo:lo + n] = d[rng.integers(0, m, size=(n, m))].mean(1)
    q = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return {"diff": float(d.mean()), "low": float(q[0]), "high": float(q[1]), "users": int(m),
            "resamples": int(n_resamples)}


def paired_bootstrap_reference(a, b, n_resamples: int = 2000, seed: int = 0, level: float = 0.95) -> dict:
    """:func:`paired_bootstrap` written as a plain loop (the reference it is tested against)."""
    rng = np.random.default_rng(seed)
    d = [float(x) - float(y) for x, y in zip(a, b)]
    m = len(d)
    means = []
    for lo in range(0, n_resamples, 256):
        n = min(256, n_resamples - lo)
        idx = rng.integers(0, m, size=(n, m))
        for row in idx:
            means.append(sum(d[j] for j in row) / m)
    means.sort()
    lo_q, hi_q = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return {"diff": sum(d) / m, "low": float(lo_q), "high": float(hi_q)}


def aligned(ranks: dict[str, dict[int, int]], a: str, b: str) -> tuple[np.ndarray, np.ndarray]:
    """Ranks of rows ``a`` and ``b`` over the users both ranked, in user-id order."""
    users = sorted(set(ranks[a]) & set(ranks[b]))
    return (np.array([ranks[a][u] for u in users], np.int64), np.array([ranks[b][u] for u in users], np.int64))


def best_baseline(models: dict[str, dict]) -> str | None:
    """The row named by :data:`BEST_BASELINE_RULE` (``None`` when the table has no baseline)."""
    base = [(float(m.get("ndcg@10", 0.0)), name) for name, m in models.items() if m.get("baseline")]
    return max(base)[1] if base else None


def compare(ranks: dict[str, dict[int, int]], a: str, b: str, k: int = 10, n_resamples: int = 2000,
            seed: int = 0) -> dict:
    """Paired bootstrap interval of NDCG@k(a) − NDCG@k(b) over the users both rows ranked."""
    ra, rb = aligned(ranks, a, b)
    out = paired_bootstrap(ndcg_per_user(ra, k), ndcg_per_user(rb, k), n_resamples, seed)
    return {"a": a, "b": b, "metric": f"ndcg@{k}", **out}


def comparisons(models: dict[str, dict], ranks: dict[str, dict[int, int]], ablations: list[str],
                n_resamples: int = 2000, seed: int = 0) -> dict:
    """Every row against the best baseline, and ``fused`` against each ablation present."""
    best = best_baseline(models)
    vs_best = {name: compare(ranks, name, best, 10, n_resamples, seed)
               for name in models if best is not None and name != best and name in ranks and best in ranks}
    vs_ablation = {name: compare(ranks, "fused", name, 10, n_resamples, seed)
                   for name in ablations if name in ranks and "fused" in ranks}
    return {"best_baseline": best, "rule": BEST_BASELINE_RULE, "resamples": n_resamples, "seed": seed,
            "level": 0.95, "vs_best_baseline": vs_best, "fused_vs_ablation": vs_ablation}


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else float(a) / float(b)


def goals(models: dict[str, dict], judged: dict, cold: dict | None) -> dict:
    """The issue's goal ratios, each with its target and whether it holds (``None`` when a row is missing).

    - fused ÷ fused-seq_only NDCG@10 ≥ 1.10 with the interval of the difference above 0;
    - best ``llm*`` row ÷ EASE^R NDCG@10 ≥ 1;
    - cold items: llm_adapted ÷ llm_frozen Recall@20 ≥ 2;
    - cold items: fused ÷ llm_frozen Recall@20 on cold targets ≥ 1;
    - cold items: fused's NDCG@10 on warm targets within its interval of the fused row without the text
      fill (``fused-no_cold``): the interval of fused − fused-no_cold reaches 0 or above;
    - fused ÷ best classic baseline NDCG@10 ≥ 1.5.
    """
    nd = {name: m.get("ndcg@10") for name, m in models.items()}
    out = {}
    seq = judged.get("fused_vs_ablation", {}).get("fused-seq_only")
    r = _ratio(nd.get("fused"), nd.get("fused-seq_only"))
    out["fused_over_seq_only"] = {"ratio": r, "target": 1.10, "interval": seq,
                                  "holds": None if r is None or seq is None else bool(r >= 1.10 and seq["low"] > 0)}
    llm_rows = {n: v for n, v in nd.items() if n.startswith("llm") and v is not None}
    best_llm = max(llm_rows, key=llm_rows.get) if llm_rows else None
    r = _ratio(llm_rows.get(best_llm), nd.get("ease"))
    out["best_llm_over_ease"] = {"ratio": r, "target": 1.0, "row": best_llm,
                                 "holds": None if r is None else bool(r >= 1.0)}
    cm = (cold or {}).get("models", {})
    r = _ratio(cm.get("llm_adapted", {}).get("recall@20"), cm.get("llm_frozen", {}).get("recall@20"))
    out["cold_llm_adapted_over_frozen"] = {"ratio": r, "target": 2.0, "holds": None if r is None else bool(r >= 2.0)}
    r = _ratio(cm.get("fused", {}).get("recall@20"), cm.get("llm_frozen", {}).get("recall@20"))
    out["cold_fused_over_frozen"] = {"ratio": r, "target": 1.0, "holds": None if r is None else bool(r >= 1.0)}
    iv = ((cold or {}).get("fused_vs") or {}).get("fused-no_cold", {}).get("warm", {}).get("ndcg@10")
    warm = {n: cm.get(n, {}).get("warm", {}).get("ndcg@10") for n in ("fused", "fused-no_cold")}
    out["warm_fused_vs_no_cold"] = {"ratio": _ratio(warm["fused"], warm["fused-no_cold"]), "target": "interval ≥ 0",
                                    "interval": iv, "holds": None if iv is None else bool(iv["high"] >= 0)}
    best = judged.get("best_baseline")
    r = _ratio(nd.get("fused"), nd.get(best) if best else None)
    out["fused_over_best_baseline"] = {"ratio": r, "target": 1.5, "row": best,
                                       "holds": None if r is None else bool(r >= 1.5)}
    return out


def goal_lines(g: dict) -> list[str]:
    """One log line per goal."""
    def fmt(x):
        return "n/a" if x is None else f"{x:.3f}"

    lines = []
    for name, v in g.items():
        extra = ""
        if v.get("interval"):
            iv = v["interval"]
            extra = f", diff {iv['diff']:+.4f} [{iv['low']:+.4f}, {iv['high']:+.4f}]"
        if v.get("row"):
            extra += f" ({v['row']})"
        held = {True: "holds", False: "missed", None: "not measured"}[v["holds"]]
        target = v["target"] if isinstance(v["target"], str) else f"≥ {v['target']}"
        lines.append(f"goal {name}: {fmt(v['ratio'])} (target {target}){extra}: {held}")
    return lines
