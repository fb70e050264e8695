"""The report's interest sections: K selection, the current window's clusters, lineage over windows, drift."""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np

from interestrec import artifacts, layout
from interestrec.report import render
from interestrec.report.render import cell, fig_png, img_tag, item_map, item_name, missing, read, table

MEMBERS_SHOWN = 3  # members per cluster whose recent items are shown
RECENT_ITEMS = 3


def k_selection(out: str) -> str:
    """The global K: the elbow and silhouette curves over the K grid, and the chosen K's quality."""
    s = read(out, "cluster")
    if s is None:
        return missing("cluster")
    parts = [f"<p>K = <b>{s.get('k')}</b> — {html.escape(str(s.get('k_reason', '')))}. The dynamics stage starts every "
             "window from these centroids; clusters can split, merge, emerge or vanish from window to window.</p>"]
    grid = s.get("k_grid") or {}
    if isinstance(grid, list):  # [{k, inertia, silhouette}, ...] as the cluster stage writes it
        grid = {key: [g.get(key) for g in grid] for key in ("k", "inertia", "silhouette")}
    ks = grid.get("k") or []
    if ks:
        plt = render.pyplot()
        fig, ax = plt.subplots(1, 2, figsize=(10, 3.2))
        ax[0].plot(ks, grid.get("inertia", []), "o-")
        ax[0].set(title="Elbow: inertia vs K", xlabel="K", ylabel="inertia")
        ax[1].plot(ks, grid.get("silhouette", []), "o-", color="tab:green")
        ax[1].set(title="Silhouette vs K (sampled)", xlabel="K", ylabel="silhouette")
        for a in ax:
            a.axvline(s.get("k"), color="grey", ls="--")
        parts.append(img_tag(fig_png(fig), "K selection"))
    keys = ("silhouette", "davies_bouldin", "calinski_harabasz", "mean_centroid_distance", "inertia", "n_iter")
    parts.append(table([[k, s.get(k)] for k in keys if k in s], ["metric", "value"]))
    return "".join(parts)


def _recent_items(out: str, window: dict, members: dict[int, list[int]]) -> dict[int, list[str]]:
    """Up to :data:`RECENT_ITEMS` titles each sampled member interacted with last before the window's end."""
    import pyarrow.compute as pc

    users = sorted({u for us in members.values() for u in us})
    if not users:
        return {}
    ingest = artifacts.join(out, layout.INGEST)
    ev = artifacts.read_parquet(artifacts.join(ingest, layout.INGEST_EVENTS), columns=["user_id", "item_id", "timestamp"])
    ev = ev.filter(pc.is_in(ev["user_id"], value_set=_int64s(users)))
    if window.get("end") is not None:
        ev = ev.filter(pc.less(ev["timestamp"], int(window["end"])))
    ev = ev.to_pandas().sort_values(["user_id", "timestamp", "item_id"])
    items = artifacts.read_parquet(artifacts.join(ingest, layout.INGEST_ITEMS), columns=["item_id", "title"])
    titles = dict(zip(items["item_id"].to_pylist(), items["title"].to_pylist()))
    ids = item_map(out)
    last = {int(u): [item_name({"item_id": int(i), "title": titles.get(int(i))}, ids) for i in g.item_id.tolist()[::-1]]
            for u, g in ev.groupby("user_id")}
    out_names = {}
    for u in users:
        seen, names = set(), []
        for n in last.get(u, []):  # newest first, each title once
            if n not in seen:
                seen.add(n)
                names.append(n)
            if len(names) == RECENT_ITEMS:
                break
        out_names[u] = names
    return out_names


def _original_users(out: str, users: list[int]) -> dict[int, object]:
    """The data's own ids of internal user indices (identity for an output written before id maps)."""
    from interestrec.ids import IdMap

    path = artifacts.join(out, layout.INGEST, layout.INGEST_USER_IDS)
    if not users or not artifacts.exists(path):
        return {}
    return dict(zip(users, IdMap.from_parquet(path).to_original(np.asarray(users, np.int64))))


def _int64s(values: list[int]):
    import pyarrow as pa

    return pa.array(values, pa.int64())


def current_clusters(out: str) -> str:
    """The last window's clusters: size, fate, description, top items by lift, members' recent items."""
    lineage = read(out, layout.DYNAMICS, layout.DYNAMICS_LINEAGE)
    described = read(out, layout.DYNAMICS, layout.DYNAMICS_CLUSTERS)
    if described is None:
        return missing("dynamics")
    ids = item_map(out)
    if not lineage or not lineage.get("windows"):  # an output without lineage: every described cluster
        rows = [[cid, c.get("description"), ", ".join(item_name(t, ids) for t in (c.get("top_items") or [])[:3])]
                for cid, c in described.items()]
        return table(rows, ["cluster", "description", "top items"])
    last = lineage["windows"][-1]
    w = int(last["window"])
    fate = (last.get("labels") or {}).get("current", {})
    members: dict[int, list[int]] = {}
    path = artifacts.join(out, layout.DYNAMICS, layout.DYNAMICS_ASSIGNMENTS)
    if artifacts.exists(path):
        a = artifacts.read_parquet(path).to_pandas()
        a = a[a.window == w].sort_values("user_id")
        rng = np.random.default_rng(0)
        for cid, g in a.groupby("cluster"):
            us = g.user_id.to_numpy()
            members[int(cid)] = sorted(rng.choice(us, min(MEMBERS_SHOWN, len(us)), replace=False).tolist())
    wrow = None
    wpath = artifacts.join(out, layout.INGEST, layout.INGEST_WINDOWS)
    if artifacts.exists(wpath):
        wt = artifacts.read_parquet(wpath).to_pandas()
        wrow = wt[wt.window == w].iloc[0].to_dict() if (wt.window == w).any() else None
    recent = _recent_items(out, wrow or {}, members) if members and wrow is not None else {}
    users = _original_users(out, [u for us in members.values() for u in us])
    rows = []
    for c in sorted(last["clusters"], key=lambda c: -c.get("size", 0)):
        cid = int(c["id"])
        d = described.get(str(cid), {})
        top = ", ".join(item_name(t, ids) for t in (d.get("top_items") or [])[:3]) if d.get("last_window", w) == w else ""
        sample = "<br>".join(f"user {html.escape(str(users.get(u, u)))}: " + html.escape("; ".join(recent.get(u, [])))
                             for u in members.get(cid, []))
        rows.append((cid, c.get("size"), fate.get(str(cid), "—"), c.get("description") or d.get("description"), top, sample))
    head = "".join(f"<th>{h}</th>" for h in ("cluster", "users", "since last window", "description", "top items (lift)",
                                             "members' most recent items"))
    body = "".join("<tr>" + "".join(f"<td>{cell(v) if i < 5 else v or '—'}</td>" for i, v in enumerate(r)) + "</tr>"
                   for r in rows)  # the last column is HTML already
    return (f"<p>Window {w}: {len(rows)} clusters, {sum(int(r[1] or 0) for r in rows)} users with enough events in "
            f"the window.</p><table class='clusters'><tr>{head}</tr>{body}</table>")


def lineage_svg(lineage: dict, width: int = 1000) -> str:
    """Clusters (circles, area ∝ users) per window (columns) with lines from each cluster to its parents."""
    wins = lineage["windows"]
    ids = sorted({int(c["id"]) for w in wins for c in w["clusters"]})
    row = {cid: i for i, cid in enumerate(ids)}
    top, left, dy = 30, 60, 26
    dx = (width - left - 40) / max(len(wins) - 1, 1)
    height = top + dy * max(len(ids), 1) + 20
    biggest = max((c.get("size", 0) for w in wins for c in w["clusters"]), default=1) or 1
    pos = {}
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="lineage" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img" aria-label="cluster lineage over windows">']
    for i, w in enumerate(wins):
        x = left + i * dx
        parts.append(f'<text x="{x:.0f}" y="14" text-anchor="middle" font-size="12">w{int(w["window"])}</text>')
        for c in w["clusters"]:
            pos[(i, int(c["id"]))] = (x, top + dy * row[int(c["id"])])
    for cid in ids:
        parts.append(f'<text x="4" y="{top + dy * row[cid] + 4}" font-size="11">#{cid}</text>')
    colours = {"survived": "#4c78a8", "emerged": "#54a24b", "split": "#f58518"}
    for i, w in enumerate(wins[1:], start=1):
        for child, parents in (w.get("parents") or {}).items():
            for p in parents:
                a, b = pos.get((i - 1, int(p))), pos.get((i, int(child)))
                if a and b:
                    parts.append(f'<line x1="{a[0]:.0f}" y1="{a[1]}" x2="{b[0]:.0f}" y2="{b[1]}" stroke="#999" />')
    for i, w in enumerate(wins):
        fate = (w.get("labels") or {}).get("current", {})
        for c in w["clusters"]:
            x, y = pos[(i, int(c["id"]))]
            r = 3 + 9 * (c.get("size", 0) / biggest) ** 0.5
            label = fate.get(str(c["id"]), "emerged" if i == 0 else "survived")
            tip = html.escape(f"#{c['id']} window {w['window']}: {c.get('size', 0)} users, {label} — {c.get('description', '')}")
            parts.append(f'<circle cx="{x:.0f}" cy="{y}" r="{r:.1f}" fill="{colours.get(label.split()[0], "#888")}">'
                         f"<title>{tip}</title></circle>")
    legend = " ".join(f'<span style="color:{c}">●</span> {k}' for k, c in colours.items())
    return "".join(parts) + f"</svg><p class='muted'>Area ∝ users; lines join a cluster to its parents. {legend}</p>"


def lineage(out: str) -> str:
    data = read(out, layout.DYNAMICS, layout.DYNAMICS_LINEAGE)
    if data is None:
        return missing("dynamics")
    if not data.get("windows"):
        return "<p class='muted'>No windows in lineage.json.</p>"
    return lineage_svg(data)


def drift(out: str) -> str:
    """Per-window drift metrics (one row per window, the first has no predecessor) and the dynamics plots."""
    s = read(out, "dynamics")
    if s is None:
        return missing("dynamics")
    parts = []
    per = s.get("windows") or []
    if per:
        keys = [k for k in ("users", "common_users", "centroid_shift", "ari", "moved_share") if any(k in w for w in per)]
        rows = [[w.get("window"), *[w.get(k) for k in keys], len(w.get("sizes") or {}) or None,
                 w.get("label_counts")] for w in per]
        parts.append(table(rows, ["window", *keys, "clusters", "fates of the previous window's clusters"])
                     + "<p class='muted'>centroid_shift: mean distance of matched centroids; ari: agreement of the "
                     "common users' assignments with the previous window; moved_share: common users who changed "
                     "cluster.</p>")
    plots = Path(out) / layout.DYNAMICS / layout.DYNAMICS_PLOTS
    if plots.is_dir():
        imgs = [img_tag(p.read_bytes(), p.stem) for p in sorted(plots.glob("*.png")) if p.stem != "elbow"]
        parts.append('<div class="grid">' + "".join(imgs) + "</div>")
    return "".join(parts) or "<p class='muted'>No drift data.</p>"
