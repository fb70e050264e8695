"""Plain-text rendering of stage summaries for the console."""

from __future__ import annotations

import json


def format_summary(stage: str, summary: dict) -> str:
    """A compact, human-readable block for one stage's summary (internal ``_run`` keys omitted)."""
    body = {k: v for k, v in summary.items() if not k.startswith("_")}
    if stage == "evaluate" and "models" in body:
        return format_metrics_table(body["models"])
    text = json.dumps(body, indent=1, default=str)
    lines = text.splitlines()
    if len(lines) > 60:
        lines = lines[:60] + [f"  ... ({len(lines) - 60} more lines in {stage}/summary.json)"]
    return f"== {stage} ==\n" + "\n".join(lines)


def format_metrics_table(models: dict[str, dict]) -> str:
    """The evaluation table as fixed-width text, one row per model."""
    cols = ["hr@10", "ndcg@10", "recall@20", "ndcg@20", "mrr", "coverage@10"]
    head = f"{'model':<18}{'base':>5} " + " ".join(f"{c:>11}" for c in cols)
    rows = [head, "-" * len(head)]
    for name, m in sorted(models.items(), key=lambda kv: -float(kv[1].get("ndcg@10", 0) or 0)):
        vals = " ".join(f"{m.get(c, float('nan')):>11.4f}" if isinstance(m.get(c), (int, float)) else f"{'-':>11}" for c in cols)
        rows.append(f"{name:<18}{'yes' if m.get('baseline') else 'no':>5} {vals}")
    return "== evaluate ==\n" + "\n".join(rows)
