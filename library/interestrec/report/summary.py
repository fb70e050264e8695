"""The run's closing summary for the console: one line per stage (seconds and its key numbers), the
quality table's top rows with their intervals, the Serve check and where the report is.

Every stage's whole summary stays in ``DIR/<stage>/summary.json`` (``--verbose`` prints it as the
stage ends); this is what a person reads when the run is over.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from interestrec.report.text import interval


def _ingest(s: Mapping) -> str:
    return (f"{s.get('users', '?')} users, {s.get('items', '?')} items, {s.get('accepted', '?')} events "
            f"({s.get('rejected', 0)} rejected)")


def _adapt(s: Mapping) -> str:
    parts = [f"objective {s.get('objective', '?')}"]
    for name in ("projection", "contrastive"):
        p = s.get(name)
        if isinstance(p, Mapping) and p.get("losses"):
            parts.append(f"{name}: {p.get('pairs', '?')} pairs, {p.get('epochs', '?')} epochs, "
                         f"loss {p['losses'][0]:.3f} → {p['losses'][-1]:.3f}")
    return "; ".join(parts)


def _encode(s: Mapping) -> str:
    return (f"{s.get('items', '?')} items ({s.get('texts_per_s', '?')} texts/s), {s.get('users', '?')} users, "
            f"{s.get('window_rows', 0)} window rows")


def _cluster(s: Mapping) -> str:
    sil = s.get("silhouette")
    sil = f"{sil:.3f}" if isinstance(sil, (int, float)) else "n/a"
    return f"K = {s.get('k', '?')}, silhouette {sil}, sizes {s.get('sizes', [])}, {s.get('n_iter', '?')} iterations"


def _dynamics(s: Mapping) -> str:
    windows = s.get("windows")
    n = len(windows) if isinstance(windows, (list, Mapping)) else windows
    return f"{n} windows, {s.get('clusters', '?')} lineage clusters ({s.get('mode', '?')} start)"


def _graph(s: Mapping) -> str:
    ndcg = s.get("valid_ndcg@10")
    ndcg = f", valid NDCG@10 {ndcg:.4f}" if isinstance(ndcg, (int, float)) else ""
    loss = s.get("final_loss")
    loss = f", loss {loss:.3f}" if isinstance(loss, (int, float)) else ""
    nodes = sum(s.get("nodes", {}).values()) if isinstance(s.get("nodes"), Mapping) else "?"
    return f"{s.get('conv', '?')}, {nodes} nodes, {s.get('epochs', '?')} epochs{loss}{ndcg}"


def _evaluate(s: Mapping) -> str:
    models = s.get("models") or {}
    best = (s.get("comparisons") or {}).get("best_baseline")
    skipped = s.get("skipped") or {}
    text = f"{len(models)} rows"
    if best in models:
        text += f", best baseline {best} NDCG@10 {models[best]['ndcg@10']:.4f}"
    return text + (f", {len(skipped)} skipped" if skipped else "")


def _publish(s: Mapping) -> str:
    return f"version {s.get('version', '?')}, {s.get('files', '?')} files"


KEY_NUMBERS: dict[str, Callable[[Mapping], str]] = {
    "ingest": _ingest, "adapt": _adapt, "encode": _encode, "cluster": _cluster, "dynamics": _dynamics,
    "graph": _graph, "evaluate": _evaluate, "publish": _publish,
}


def stage_line(name: str, summary: Mapping) -> str:
    """``name``'s key numbers in one line (``''`` for a stage without a formatter or a malformed summary)."""
    fmt = KEY_NUMBERS.get(name)
    if fmt is None:
        return ""
    try:
        return fmt(summary)
    except (KeyError, TypeError, ValueError, IndexError) as e:  # an older summary layout: say so, do not fail the run
        return f"(summary.json not in the expected layout: {type(e).__name__} {e})"


def quality_rows(evaluate: Mapping, top: int = 5) -> list[str]:
    """The quality table's ``top`` rows by test NDCG@10 and the best baseline, with their 95% intervals."""
    models = evaluate.get("models") or {}
    if not models:
        return []
    best = (evaluate.get("comparisons") or {}).get("best_baseline")
    ranked = sorted(models, key=lambda n: -float(models[n].get("ndcg@10") or 0.0))
    shown = ranked[:top] + ([best] if best in models and best not in ranked[:top] else [])
    head = f"  {'model':<18}{'NDCG@10':>9}{'HR@10':>8}   NDCG@10 − best baseline [95% paired bootstrap]"
    rows = [head]
    for name in shown:
        m = models[name]
        tag = " (best baseline)" if name == best else (" (baseline)" if m.get("baseline") else "")
        rows.append(f"  {name:<18}{m.get('ndcg@10', float('nan')):>9.4f}{m.get('hr@10', float('nan')):>8.4f}   "
                    f"{interval(m.get('vs_best_baseline'))}{tag}")
    return rows


def run_summary(summaries: Mapping[str, Mapping], seconds: Mapping[str, float] | None = None,
                skipped: frozenset[str] | set[str] = frozenset(), wall: float | None = None,
                serve: Mapping | None = None, report: str | None = None) -> str:
    """The closing block: stage table, quality top rows, Serve check, report path.

    Args:
        summaries: stage name → its summary, in run order.
        seconds: stage name → seconds it took in this run (default: each summary's ``_run.seconds``).
        skipped: stages skipped as unchanged (their numbers are from the earlier run).
        wall: the whole run's seconds (``None``: not shown).
        serve: what the Serve check returned (``None``: no check ran).
        report: the report's path.
    """
    width = max([len(n) for n in summaries] + [5])
    lines = ["", "== summary ==", f"{'stage':<{width}}  {'seconds':>8}  key numbers"]
    total = 0.0
    for name, s in summaries.items():
        sec = (seconds or {}).get(name, (s.get("_run") or {}).get("seconds"))
        total += float(sec or 0.0)
        shown = f"{sec:>8.1f}" if isinstance(sec, (int, float)) else f"{'-':>8}"
        note = " (unchanged, not re-run)" if name in skipped else ""
        lines.append(f"{name:<{width}}  {shown}  {stage_line(name, s)}{note}")
    lines.append(f"{'total':<{width}}  {total:>8.1f}" + (f"  (wall {wall:.1f}s with Ray start-up)" if wall else ""))
    if "evaluate" in summaries:
        rows = quality_rows(summaries["evaluate"])
        if rows:
            lines += ["", "quality (test, full ranking, leave-last-out):", *rows]
    if serve is not None:
        items = ", ".join(str(i) for i in serve.get("items", []))
        lines += ["", f"serve check: POST {serve.get('url', '/recommend')} → {serve.get('status', '?')} in "
                      f"{serve.get('ms', 0):.0f} ms (version {serve.get('version')}, cluster {serve.get('cluster')}; "
                      f"user {serve.get('user')} → items {items})"]
    if report:
        lines += ["", f"report: {report}"]
    return "\n".join(lines)
