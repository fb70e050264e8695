"""A self-contained HTML report of a pipeline run (images embedded as base64 PNG).

Sections: dataset summary and rejects, the metrics table against baselines, K selection (elbow +
silhouette), cluster descriptions, drift plots and lineage, the GraphSAGE training curve. A section
whose stage has not run says so instead of failing.
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

from interestrec import artifacts
from interestrec.report.text import interval

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
h1{margin-bottom:0}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ddd;padding:.25em .6em;text-align:right}
th{background:#f5f5f5}td:first-child,th:first-child{text-align:left}tr.ours td{font-weight:600}
img{max-width:100%;border:1px solid #eee;margin:.3em 0}.grid{display:grid;grid-template-columns:1fr 1fr;gap:1em}
.muted{color:#888}code{background:#f5f5f5;padding:0 .2em}
"""


def _read(out: str, stage: str, name: str = "summary.json"):
    path = artifacts.join(out, stage, name)
    return artifacts.read_json(path) if artifacts.exists(path) else None


def _img_tag(png: bytes, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'


def _fig_png(fig) -> bytes:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def _table(rows: list[list], head: list[str], classes: list[str] | None = None) -> str:
    def cell(v):
        return f"{v:.4f}" if isinstance(v, float) else html.escape(str(v))

    out = ["<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr>"]
    for i, r in enumerate(rows):
        cls = f' class="{classes[i]}"' if classes and classes[i] else ""
        out.append(f"<tr{cls}>" + "".join(f"<td>{cell(v)}</td>" for v in r) + "</tr>")
    return "".join(out) + "</table>"


def _missing(stage: str) -> str:
    return f'<p class="muted">The <code>{stage}</code> stage has not run for this output.</p>'


def _dataset(out: str) -> str:
    s = _read(out, "ingest")
    if s is None:
        return _missing("ingest")
    rows = [[k, s.get(k)] for k in ("rows_read", "accepted", "rejected", "users", "items")]
    parts = [_table(rows, ["", "count"])]
    if s.get("rejected_by_reason"):
        parts.append("<h3>Rejected rows by reason</h3>" + _table(sorted(s["rejected_by_reason"].items()), ["reason", "rows"]))
    if s.get("events_by_kind"):
        parts.append("<h3>Events by kind</h3>" + _table(sorted(s["events_by_kind"].items()), ["event", "rows"]))
    split = s.get("split") or {}
    if split:
        parts.append("<h3>Temporal split</h3>" + _table([[k, v] for k, v in split.items() if not isinstance(v, dict)], ["", "count"]))
    w = s.get("windows") or {}
    if w.get("events_per_window"):
        parts.append(f"<p>{w.get('count')} time windows; events per window: {html.escape(str(w['events_per_window']))}</p>")
    return "".join(parts)


def _metrics(out: str) -> str:
    s = _read(out, "evaluate")
    if s is None:
        return _missing("evaluate")
    cols = ["hr@10", "ndcg@10", "recall@20", "ndcg@20", "mrr", "coverage@10"]
    models = sorted(s.get("models", {}).items(), key=lambda kv: -float(kv[1].get("ndcg@10") or 0))
    rows = [[name, "baseline" if m.get("baseline") else "ablation" if m.get("ablation_of") else "ours",
             *[m.get(c, "") for c in cols], interval(m.get("vs_best_baseline"))] for name, m in models]
    classes = ["" if m.get("baseline") else "ours" for _, m in models]
    comp = s.get("comparisons") or {}
    best = comp.get("best_baseline")
    parts = [_table(rows, ["model", "kind", *cols, f"NDCG@10 − {best or 'best baseline'} [95%]"], classes)]
    if comp:
        parts.append(f"<p class='muted'>Intervals: {html.escape(str((s.get('protocol') or {}).get('intervals', '')))}; "
                     f"best baseline: {html.escape(str(comp.get('rule', '')))}.</p>")
    if comp.get("fused_vs_ablation"):
        abl = [[name, s["models"].get(name, {}).get("ndcg@10", ""), ", ".join(s["models"].get(name, {}).get("removed", [])),
                interval(c)] for name, c in comp["fused_vs_ablation"].items()]
        parts.append("<h3>Ablations of the fused row (refit at its tuned params, one term removed)</h3>"
                     + _table(abl, ["row", "ndcg@10", "removed terms", "fused − row NDCG@10 [95%]"]))
    cold = s.get("cold_items") or {}
    if cold.get("models") or cold.get("skipped"):
        crow = [[name, m["recall@20"], m["ndcg@20"], m["users"]] for name, m in cold.get("models", {}).items()]
        crow += [[name, "skipped", html.escape(why), ""] for name, why in cold.get("skipped", {}).items()]
        parts.append(f"<h3>Cold items ({cold.get('items')} items, {cold.get('share', 0):.0%} of the catalogue, "
                     f"all their training interactions withheld)</h3>"
                     + _table(crow, ["model", "recall@20", "ndcg@20", "users"])
                     + f"<p class='muted'>Chance Recall@20 ≈ {cold.get('chance_recall@20', 0):.4f}. "
                     f"{html.escape(str(cold.get('protocol', '')))}</p>")
    cu = s.get("cold_users") or {}
    if cu:
        urow = [[name, m["ndcg@10"], m["recall@20"], m["users"]] for name, m in cu.get("models", {}).items() if m["users"]]
        parts.append(f"<h3>Cold users (≤ {cu.get('max_events')} training events: {cu.get('users', 0)} users)</h3>"
                     + (_table(urow, ["model", "ndcg@10", "recall@20", "users"]) if urow else ""))
    if s.get("goals"):
        grow = [[name, "n/a" if g.get("ratio") is None else g["ratio"], f"≥ {g.get('target')}",
                 {True: "holds", False: "missed", None: "not measured"}[g.get("holds")]] for name, g in s["goals"].items()]
        parts.append("<h3>Goals</h3>" + _table(grow, ["goal", "ratio", "target", ""]))
    params = [[name, ", ".join(f"{k}={v}" for k, v in (m.get("params") or {}).items())] for name, m in models if m.get("params")]
    if params:
        parts.append("<h3>Tuned hyper-parameters</h3>" + _table(params, ["model", "chosen on validation"]))
    if s.get("skipped"):
        parts.append("<p class='muted'>Skipped: " + html.escape(", ".join(f"{k} ({v})" for k, v in s["skipped"].items())) + "</p>")
    return "".join(parts)


def _k_selection(out: str) -> str:
    s = _read(out, "cluster")
    if s is None:
        return _missing("cluster")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    parts = [f"<p>K = <b>{s.get('k')}</b> — {html.escape(str(s.get('k_reason', '')))}</p>"]
    grid = s.get("k_grid") or {}
    if isinstance(grid, list):  # [{k, inertia, silhouette}, ...] as the cluster stage writes it
        grid = {key: [g.get(key) for g in grid] for key in ("k", "inertia", "silhouette")}
    ks = grid.get("k") or []
    if ks:
        fig, ax = plt.subplots(1, 2, figsize=(10, 3.2))
        ax[0].plot(ks, grid.get("inertia", []), "o-")
        ax[0].set(title="Elbow: inertia vs K", xlabel="K", ylabel="inertia")
        ax[1].plot(ks, grid.get("silhouette", []), "o-", color="tab:green")
        ax[1].set(title="Silhouette vs K (sampled)", xlabel="K", ylabel="silhouette")
        for a in ax:
            a.axvline(s.get("k"), color="grey", ls="--")
        parts.append(_img_tag(_fig_png(fig), "K selection"))
    rows = [[k, s.get(k)] for k in ("silhouette", "davies_bouldin", "calinski_harabasz", "mean_centroid_distance", "inertia", "n_iter") if k in s]
    parts.append(_table(rows, ["metric", "value"]))
    return "".join(parts)


def _item_map(out: str):
    """The ingest's item :class:`~interestrec.ids.IdMap`, or ``None`` for an output written before id maps."""
    from interestrec.ids import IdMap

    path = artifacts.join(out, "ingest", "ids", "items.parquet")
    return IdMap.from_parquet(path) if artifacts.exists(path) else None


def _item_name(t, item_map) -> str:
    """A top item as a reader knows it: its title, else its original id (never the internal index)."""
    if not isinstance(t, dict):
        return str(t)
    idx = t.get("item_id")
    original = item_map.to_original([idx])[0] if item_map is not None and idx is not None else idx
    title = t.get("title")
    return str(title) if title and str(title) != str(idx) else str(original)


def _clusters(out: str) -> str:
    clusters = _read(out, "dynamics", "clusters.json")
    if clusters is None:
        return _missing("dynamics")
    items = clusters.items() if isinstance(clusters, dict) else enumerate(clusters)
    item_map = _item_map(out)
    rows = []
    for cid, c in items:
        top = c.get("top_items") or []
        names = ", ".join(_item_name(t, item_map) for t in top[:3])
        rows.append([cid, c.get("description", ""), names])
    return _table(rows, ["cluster", "description", "top items"])


def _drift(out: str) -> str:
    s = _read(out, "dynamics")
    if s is None:
        return _missing("dynamics")
    parts = []
    per_window = s.get("windows") or s.get("per_window") or []
    if isinstance(per_window, list) and per_window:
        keys = [k for k in ("window", "centroid_shift", "ari", "moved_share", "n_users") if k in per_window[0]]
        parts.append(_table([[w.get(k, "") for k in keys] for w in per_window], keys))
    plots = Path(out) / "dynamics" / "plots"
    if plots.is_dir():
        imgs = [_img_tag(p.read_bytes(), p.stem) for p in sorted(plots.glob("*.png"))]
        parts.append('<div class="grid">' + "".join(imgs) + "</div>")
    lineage = _read(out, "dynamics", "lineage.json")
    if lineage is not None:
        parts.append("<details><summary>lineage.json</summary><pre>" + html.escape(_short_json(lineage)) + "</pre></details>")
    return "".join(parts) or "<p class='muted'>No drift data.</p>"


def _short_json(obj, limit: int = 20000) -> str:
    import json

    text = json.dumps(obj, indent=1, default=str)
    return text if len(text) <= limit else text[:limit] + "\n…"


def _training(out: str) -> str:
    curve = _read(out, "graph", "curve.json")
    if curve is None:
        return _missing("graph")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = curve.get("epochs", curve) if isinstance(curve, dict) else curve
    fig, ax = plt.subplots(figsize=(6, 3.2))
    xs = [e.get("epoch", i) for i, e in enumerate(epochs)]
    ax.plot(xs, [e.get("loss") for e in epochs], "o-", label="train loss")
    ax.set(xlabel="epoch", ylabel="BPR loss", title="GraphSAGE training curve")
    if any("ndcg@10" in e or "valid_ndcg@10" in e for e in epochs):
        ax2 = ax.twinx()
        ax2.plot(xs, [e.get("valid_ndcg@10", e.get("ndcg@10")) for e in epochs], "s-", color="tab:orange", label="valid NDCG@10")
        ax2.set_ylabel("valid NDCG@10")
    ax.legend(loc="upper right")
    summary = _read(out, "graph") or {}
    rows = [[k, v] for k, v in summary.items() if not k.startswith("_") and isinstance(v, (int, float, str))]
    return _img_tag(_fig_png(fig), "training curve") + _table(rows, ["", "value"])


def write_report(out: str, path: str | None = None) -> str:
    """Render ``<out>/report.html`` (or ``path``) from a pipeline output directory; returns the path."""
    sections = [
        ("Dataset and rejects", _dataset),
        ("Recommendation quality (full ranking, leave-last-out)", _metrics),
        ("Choosing K", _k_selection),
        ("Interest clusters", _clusters),
        ("Interest drift over time", _drift),
        ("GraphSAGE training", _training),
    ]
    body = []
    for title, fn in sections:
        try:
            content = fn(out)
        except Exception as e:  # a broken section must not hide the others
            content = f"<p class='muted'>Could not render this section: {html.escape(repr(e))}</p>"
        body.append(f"<h2>{html.escape(title)}</h2>{content}")
    doc = (
        "<!doctype html><html><head><meta charset='utf-8'><title>interestrec report</title>"
        f"<style>{_CSS}</style></head><body><h1>interestrec report</h1>"
        f"<p class='muted'>{html.escape(str(out))}</p>{''.join(body)}</body></html>"
    )
    target = path or artifacts.join(out, "report.html")
    artifacts.write_bytes_atomic(target, doc.encode())
    return target
