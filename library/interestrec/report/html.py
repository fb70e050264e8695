"""A self-contained HTML report of a pipeline run, read top to bottom (images as base64 PNG, lineage as SVG).

The data, then how good the recommendations are (the quality table with intervals, the ablations, cold
items and users), then the interests behind them (the current window's clusters, K, lineage over the
windows, drift), then the training curves. A section whose stage has not run says so instead of failing.
"""

from __future__ import annotations

import html

from interestrec import artifacts, layout
from interestrec.report import clusters, quality
from interestrec.report.render import PATH_KEYS, fig_png, img_tag, missing, pyplot, read, table

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
h1{margin-bottom:0}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ddd;padding:.25em .6em;text-align:right}
th{background:#f5f5f5}td:first-child,th:first-child{text-align:left}tr.ours td{font-weight:600}
table.clusters td{text-align:left;vertical-align:top}
img{max-width:100%;border:1px solid #eee;margin:.3em 0}.grid{display:grid;grid-template-columns:1fr 1fr;gap:1em}
svg.lineage{max-width:100%;height:auto;border:1px solid #eee}
.muted{color:#888}code{background:#f5f5f5;padding:0 .2em}nav a{margin-right:1em}
"""


def _dataset(out: str) -> str:
    s = read(out, "ingest")
    if s is None:
        return missing("ingest")
    rows = [[k, s.get(k)] for k in ("rows_read", "accepted", "rejected", "users", "items")]
    parts = [table(rows, ["", "count"])]
    if s.get("rejected_by_reason"):
        parts.append("<h3>Rejected rows by reason</h3>" + table(sorted(s["rejected_by_reason"].items()), ["reason", "rows"]))
    if s.get("events_by_kind"):
        parts.append("<h3>Events by kind</h3>" + table(sorted(s["events_by_kind"].items()), ["event", "rows"]))
    split = s.get("split") or {}
    if split:
        parts.append("<h3>Temporal split</h3>" + table([[k, v] for k, v in split.items() if not isinstance(v, dict)], ["", "count"]))
    w = s.get("windows") or {}
    if w.get("events_per_window"):
        parts.append(f"<p>{w.get('count')} time windows; events per window: {html.escape(str(w['events_per_window']))}</p>")
    return "".join(parts)


GRAPH_KEYS = ("conv", "sampling", "adversarial", "features", "workers", "epochs", "final_loss", "valid_ndcg@10",
              "seconds_per_epoch", "robustness")


def _training(out: str) -> str:
    """Loss curves of the stages that train (GraphSAGE, the adapt stage) and the GraphSAGE run's key facts."""
    curve = read(out, layout.GRAPH, layout.GRAPH_CURVE)
    adapt = read(out, "adapt") or {}
    adapt_curves = {o: p["losses"] for o, p in adapt.items() if isinstance(p, dict) and p.get("losses")}
    if curve is None and not adapt_curves:
        return missing("graph")
    plt = pyplot()
    panels = (curve is not None) + bool(adapt_curves)
    fig, axes = plt.subplots(1, panels, figsize=(6.0 * panels, 3.4), squeeze=False, layout="constrained")
    axes = list(axes[0])
    parts = []
    if curve is not None:
        ax = axes.pop(0)
        epochs = curve.get("epochs", curve) if isinstance(curve, dict) else curve
        xs = [e.get("epoch", i) for i, e in enumerate(epochs)]
        ax.plot(xs, [e.get("loss") for e in epochs], "o-", label="train BPR loss")
        ax.set(xlabel="epoch", ylabel="BPR loss", title="GraphSAGE")
        lines = list(ax.get_lines())
        if any("ndcg@10" in e or "valid_ndcg@10" in e for e in epochs):
            ax2 = ax.twinx()
            ax2.plot(xs, [e.get("valid_ndcg@10", e.get("ndcg@10")) for e in epochs], "s-", color="tab:orange",
                     label="valid NDCG@10")
            ax2.set_ylabel("valid NDCG@10")
            lines += ax2.get_lines()
        ax.legend(handles=lines, loc="upper right")
    if adapt_curves:
        ax = axes.pop(0)
        for objective, losses in adapt_curves.items():
            ax.plot(range(1, len(losses) + 1), losses, "o-", label=objective)
        ax.set(xlabel="epoch", ylabel="InfoNCE loss", title="Language-model adaptation")
        ax.legend(loc="upper right")
    parts.append(img_tag(fig_png(fig), "training curves"))
    summary = read(out, "graph") or {}
    rows = [[k, summary[k]] for k in GRAPH_KEYS if k in summary and k not in PATH_KEYS]
    if summary.get("nodes"):
        rows.append(["nodes", summary["nodes"]])
    if rows:
        parts.append("<h3>GraphSAGE run</h3>" + table(rows, ["", "value"]))
    return "".join(parts)


SECTIONS = (
    ("dataset", "Dataset and rejects", _dataset),
    ("quality", "Recommendation quality (full ranking, leave-last-out)", quality.quality),
    ("ablations", "What each term of the fused model adds", quality.ablations),
    ("cold", "Cold items and cold users", quality.cold),
    ("clusters", "Interest clusters now", clusters.current_clusters),
    ("k", "Choosing K", clusters.k_selection),
    ("lineage", "Cluster lineage over time", clusters.lineage),
    ("drift", "Interest drift over time", clusters.drift),
    ("training", "Training curves", _training),
)


def write_report(out: str, path: str | None = None) -> str:
    """Render ``<out>/report.html`` (or ``path``) from a pipeline output directory; returns the path."""
    body = []
    for key, title, fn in SECTIONS:
        try:
            content = fn(out)
        except Exception as e:  # a broken section must not hide the others; it says what broke
            content = f"<p class='muted'>Could not render this section: {html.escape(repr(e))}</p>"
        body.append(f"<section id='{key}'><h2>{html.escape(title)}</h2>{content}</section>")
    nav = "<nav>" + "".join(f"<a href='#{key}'>{html.escape(title.split(' (')[0])}</a>" for key, title, _ in SECTIONS) + "</nav>"
    doc = (
        "<!doctype html><html><head><meta charset='utf-8'><title>interestrec report</title>"
        f"<style>{_CSS}</style></head><body><h1>interestrec report</h1>"
        f"<p class='muted'>{html.escape(str(out))}</p>{nav}{''.join(body)}</body></html>"
    )
    target = path or artifacts.join(out, "report.html")
    artifacts.write_bytes_atomic(target, doc.encode())
    return target
