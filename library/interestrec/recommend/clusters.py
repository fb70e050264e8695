"""Cluster profiles for ``/clusters``: size, a genre-lift description, top items and dynamics lineage.

The served clusters are the cluster stage's (``cluster/assignments.parquet``, the users' whole-history
vectors). The dynamics stage tracks per-window clusters under stable lineage ids; a served cluster is
linked to the lineage id most of its users hold in their latest window (when
``dynamics/assignments.parquet`` is present), and reports that id's sizes, parents and MONIC labels per
window from ``lineage.json`` and its description from ``clusters.json``.
"""

from __future__ import annotations

import numpy as np

from interestrec.dynamics.describe import lift_table
from interestrec.recommend.artifacts import ServingArtifacts

NO_GENRE = "(no genres listed)"  # MovieLens' placeholder genre, never a description


def genre_lift(arts: ServingArtifacts, members: np.ndarray, top: int = 3) -> list[tuple[str, float]]:
    """Genres over-represented in the members' interactions vs. everyone's: ``[(genre, lift)]``, best first
    (:func:`interestrec.dynamics.describe.lift_table` over per-genre event counts).

    Shapes:
        members: ``(n_users,)`` bool mask over user indices.
    """
    if not arts.genres or not members.any():
        return []
    vocab = sorted({g for gs in arts.genres.values() for g in gs})
    col = {g: j for j, g in enumerate(vocab)}
    rows, cols = [], []
    for i, iid in enumerate(arts.item_ids):
        for g in arts.genres.get(int(iid), []):
            rows.append(i)
            cols.append(col[g])
    per_item = np.bincount(arts.ev_item, minlength=len(arts.item_ids))
    per_item_in = np.bincount(arts.ev_item[members[arts.ev_user]], minlength=len(arts.item_ids))
    overall_c = np.bincount(np.asarray(cols, np.int64), weights=per_item[rows], minlength=len(vocab))
    inside_c = np.bincount(np.asarray(cols, np.int64), weights=per_item_in[rows], minlength=len(vocab))
    inside = dict(zip(vocab, inside_c))
    overall = dict(zip(vocab, overall_c))
    n_in, n_all = max(sum(inside.values()), 1), max(sum(overall.values()), 1)
    inside.pop(NO_GENRE, None)
    return [(g, v) for g, v, _ in lift_table(inside, overall, n_in, n_all, min_support=3, top=top)]


def lineage_id(arts: ServingArtifacts, members: np.ndarray) -> int | None:
    """The stable dynamics id most members hold in their latest window, or ``None`` without dynamics data."""
    if arts.dyn_user is None or not len(arts.dyn_user):
        return None
    m = members[arts.dyn_user]
    if not m.any():
        return None
    u, w, c = arts.dyn_user[m], arts.dyn_window[m], arts.dyn_cluster[m]
    order = np.lexsort((w, u))
    last = np.r_[u[order][1:] != u[order][:-1], True]
    ids, n = np.unique(c[order][last], return_counts=True)
    return int(ids[np.argmax(n)])


def cluster_profiles(arts: ServingArtifacts, cluster_pop: np.ndarray, top_items: int = 10) -> list[dict]:
    """One profile per served cluster ``0..K-1``.

    Shapes:
        cluster_pop: ``(K + 1, n_items)`` (the fused model's popularity rows; the last row is global).
    """
    out = []
    for c in range(len(arts.centroids)):
        members = arts.user_cluster == c
        lift = genre_lift(arts, members)
        lid = lineage_id(arts, members)
        dyn = arts.cluster_info.get(str(lid), {}) if lid is not None else {}
        desc = ", ".join(g for g, _ in lift) or dyn.get("description", "")
        top = [int(i) for i in np.argsort(-cluster_pop[c], kind="stable")[:top_items] if cluster_pop[c][i] > 0]
        lineage = []
        for w in arts.lineage.get("windows", []) if lid is not None else []:
            entry = next((x for x in w.get("clusters", []) if x.get("id") == lid), None)
            if entry is not None:
                lineage.append({"window": w["window"], "size": entry.get("size"),
                                "parents": (w.get("parents") or {}).get(str(lid), []),
                                "label": (w.get("labels") or {}).get("current", {}).get(str(lid))})
        out.append({
            "id": c, "size": int(members.sum()), "description": desc,
            "genres": [{"genre": g, "lift": round(v, 3)} for g, v in lift],
            "top_items": [{"item_id": int(arts.item_ids[i]), "title": arts.titles.get(int(arts.item_ids[i]), "")} for i in top],
            "lineage_id": lid, "lineage_description": dyn.get("description", ""), "lineage": lineage,
        })
    return out
