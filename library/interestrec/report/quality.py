"""The report's evaluation sections: the quality table with intervals, the ablations, cold items and users."""

from __future__ import annotations

import html

from interestrec.report.render import missing, read, table
from interestrec.report.text import interval

COLUMNS = ["hr@10", "ndcg@10", "recall@20", "ndcg@20", "mrr", "coverage@10"]


def _summary(out: str) -> dict | None:
    return read(out, "evaluate")


def quality(out: str) -> str:
    """Every row of the evaluation table, best first, with NDCG@10 − best baseline and its 95% interval."""
    s = _summary(out)
    if s is None:
        return missing("evaluate")
    models = sorted(s.get("models", {}).items(), key=lambda kv: -float(kv[1].get("ndcg@10") or 0))
    rows = [[name, "baseline" if m.get("baseline") else "ablation" if m.get("ablation_of") else "ours",
             *[m.get(c) for c in COLUMNS], interval(m.get("vs_best_baseline"))] for name, m in models]
    classes = ["" if m.get("baseline") else "ours" for _, m in models]
    comp = s.get("comparisons") or {}
    best = comp.get("best_baseline")
    parts = [table(rows, ["model", "kind", *COLUMNS, f"NDCG@10 − {best or 'best baseline'} [95%]"], classes)]
    protocol = s.get("protocol") or {}
    if protocol:
        parts.append("<p class='muted'>" + html.escape("; ".join(
            f"{k}: {protocol[k]}" for k in ("split", "ranking", "tuning", "intervals") if k in protocol)) + "</p>")
    if comp.get("rule"):
        parts.append(f"<p class='muted'>Best baseline: {html.escape(str(comp['rule']))}.</p>")
    if s.get("goals"):
        grow = [[name, g.get("ratio"), g["target"] if isinstance(g.get("target"), str) else f"≥ {g.get('target')}",
                 {True: "holds", False: "missed", None: "not measured"}[g.get("holds")]] for name, g in s["goals"].items()]
        parts.append("<h3>Goals</h3>" + table(grow, ["goal", "ratio", "target", ""]))
    params = [[name, ", ".join(f"{k}={v}" for k, v in (m.get("params") or {}).items())] for name, m in models if m.get("params")]
    if params:
        parts.append("<h3>Tuned hyper-parameters</h3>" + table(params, ["model", "chosen on validation"]))
    if s.get("skipped"):
        parts.append("<p class='muted'>Skipped: " + html.escape(", ".join(f"{k} ({v})" for k, v in s["skipped"].items())) + "</p>")
    return "".join(parts)


def ablations(out: str) -> str:
    """The fused row against itself with one term removed (paired intervals)."""
    s = _summary(out)
    if s is None:
        return missing("evaluate")
    comp = (s.get("comparisons") or {}).get("fused_vs_ablation") or {}
    if not comp:
        return "<p class='muted'>This evaluation ran without the fused row's ablations (evaluate.ablations).</p>"
    models = s.get("models", {})
    rows = [[name, models.get(name, {}).get("ndcg@10"), ", ".join(models.get(name, {}).get("removed", [])), interval(c)]
            for name, c in comp.items()]
    return ("<h3>Ablations of the fused row (refit at its tuned params, one term removed)</h3>"
            + table(rows, ["row", "ndcg@10", "removed terms", "fused − row NDCG@10 [95%]"])
            + "<p class='muted'>An interval above zero: the removed term helps.</p>")


def _cold_items(c: dict) -> str:
    """The cold-item protocol: every row on all / warm / cold test targets, fused − row intervals, the fill's choice."""
    t = c.get("targets") or {}
    split = f"; test targets: {t.get('all')} all = {t.get('warm')} warm + {t.get('cold')} cold" if t else ""
    head = (f"<h3>Cold items ({c.get('items')} items, {c.get('share', 0):.0%} of the catalogue, "
            f"all their training interactions withheld{split})</h3>")
    vs = c.get("fused_vs") or {}
    rows, classes = [], []
    for name, m in c.get("models", {}).items():
        iv = vs.get(name) or {}
        splits = {"cold": {"recall@20": m.get("recall@20")}, **{s: m[s] for s in ("all", "warm", "cold") if s in m}}
        rows.append([name, *[(splits.get(s) or {}).get("recall@20") for s in ("all", "warm", "cold")],
                     *[(splits.get(s) or {}).get("ndcg@10") for s in ("all", "warm", "cold")],
                     interval((iv.get("cold") or {}).get("recall@20")), interval((iv.get("warm") or {}).get("ndcg@10")),
                     interval((iv.get("all") or {}).get("ndcg@10"))])
        classes.append("" if m.get("baseline") else "ours")
    rows += [[name, "skipped", why, *[None] * 7] for name, why in c.get("skipped", {}).items()]
    classes += [""] * len(c.get("skipped", {}))
    parts = [head, table(rows, ["model", "recall@20 all", "recall@20 warm", "recall@20 cold", "ndcg@10 all",
                                "ndcg@10 warm", "ndcg@10 cold", "fused − row recall@20 cold [95%]",
                                "fused − row ndcg@10 warm [95%]", "fused − row ndcg@10 all [95%]"], classes)]
    parts.append(f"<p class='muted'>Chance Recall@20 ≈ {c.get('chance_recall@20', 0):.4f}. Best collaborative "
                 f"baseline: {html.escape(str(c.get('best_collaborative')))}. {html.escape(str(c.get('protocol', '')))}</p>")
    a = c.get("cold_alpha") or {}
    if a.get("tried"):
        arow = [[x["cold_alpha"], x["all"]["ndcg@10"], x["warm"]["ndcg@10"], x["cold"]["recall@20"],
                 "chosen" if x["cold_alpha"] == a.get("chosen") else ""] for x in a["tried"]]
        parts.append("<h3>The fused row's text fill for cold items, chosen on validation</h3>"
                     + table(arow, ["cold_alpha", "valid ndcg@10 all", "valid ndcg@10 warm", "valid recall@20 cold", ""])
                     + f"<p class='muted'>{html.escape(str(a.get('rule', '')))}.</p>")
    return "".join(parts)


def cold(out: str) -> str:
    """Items whose every training interaction was withheld, and users with few training events."""
    s = _summary(out)
    if s is None:
        return missing("evaluate")
    parts = []
    c = s.get("cold_items") or {}
    if c.get("models") or c.get("skipped"):
        parts.append(_cold_items(c))
    cu = s.get("cold_users") or {}
    urow = [[name, m["ndcg@10"], m["recall@20"], m["users"]] for name, m in cu.get("models", {}).items() if m.get("users")]
    if urow:
        parts.append(f"<h3>Cold users (≤ {cu.get('max_events')} training events: {cu.get('users', 0)} users)</h3>"
                     + table(urow, ["model", "ndcg@10", "recall@20", "users"]))
    return "".join(parts) or "<p class='muted'>This evaluation ran without the cold-item protocol (evaluate.cold_item_share = 0).</p>"
