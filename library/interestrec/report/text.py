"""Plain-text rendering of stage summaries for the console."""

from __future__ import annotations

import json


def format_summary(stage: str, summary: dict) -> str:
    """A compact, human-readable block for one stage's summary (internal ``_run`` keys omitted)."""
    body = {k: v for k, v in summary.items() if not k.startswith("_")}
    if stage == "evaluate" and "models" in body:
        return format_metrics_table(body["models"]) + format_judging(body)
    text = json.dumps(body, indent=1, default=str)
    lines = text.splitlines()
    if len(lines) > 60:
        lines = lines[:60] + [f"  ... ({len(lines) - 60} more lines in {stage}/summary.json)"]
    return f"== {stage} ==\n" + "\n".join(lines)


def interval(c: dict | None) -> str:
    """A paired-bootstrap comparison as ``+0.0209 [+0.0052, +0.0362]`` (``-`` when absent)."""
    if not c:
        return "-"
    return f"{c['diff']:+.4f} [{c['low']:+.4f}, {c['high']:+.4f}]"


def format_metrics_table(models: dict[str, dict]) -> str:
    """The evaluation table as fixed-width text, one row per model, with NDCG@10 − best baseline and its
    95% paired-bootstrap interval when the summary has them."""
    cols = ["hr@10", "ndcg@10", "recall@20", "ndcg@20", "mrr", "coverage@10"]
    head = f"{'model':<18}{'base':>5} " + " ".join(f"{c:>11}" for c in cols) + "  ndcg@10 - best baseline [95%]"
    rows = [head, "-" * len(head)]
    for name, m in sorted(models.items(), key=lambda kv: -float(kv[1].get("ndcg@10", 0) or 0)):
        vals = " ".join(f"{m.get(c, float('nan')):>11.4f}" if isinstance(m.get(c), (int, float)) else f"{'-':>11}" for c in cols)
        rows.append(f"{name:<18}{'yes' if m.get('baseline') else 'no':>5} {vals}  {interval(m.get('vs_best_baseline'))}")
    return "== evaluate ==\n" + "\n".join(rows)


def format_judging(summary: dict) -> str:
    """Ablations, cold items, cold users and goals of an evaluate summary as text lines ('' when absent)."""
    lines = []
    comp = summary.get("comparisons") or {}
    if comp.get("best_baseline"):
        lines.append(f"best baseline: {comp['best_baseline']} ({comp.get('rule', '')})")
    for name, c in (comp.get("fused_vs_ablation") or {}).items():
        lines.append(f"fused - {name}: NDCG@10 {interval(c)}")
    cold = summary.get("cold_items") or {}
    for name, m in (cold.get("models") or {}).items():
        lines.append(f"cold items {name}: recall@20 {m['recall@20']:.4f} ndcg@20 {m['ndcg@20']:.4f} ({m['users']} users)")
    for name, why in (cold.get("skipped") or {}).items():
        lines.append(f"cold items {name}: skipped ({why})")
    cu = summary.get("cold_users") or {}
    if cu:
        lines.append(f"cold users (<= {cu.get('max_events')} training events): {cu.get('users', 0)} users")
    for name, g in (summary.get("goals") or {}).items():
        r = "n/a" if g.get("ratio") is None else f"{g['ratio']:.3f}"
        lines.append(f"goal {name}: {r} (target >= {g.get('target')})")
    return ("\n" + "\n".join(lines)) if lines else ""
