"""Load a pipeline output or a published version into plain arrays for the recommender (no Ray).

Reads only parquet / npy / json (``docs/artifacts.md``); never pickle. ``path`` may be a pipeline
output (``DIR``), a publish root (``DIR`` with ``publish/LATEST``) or one version (``DIR/publish/vN``),
local or any pyarrow filesystem URI.

Required: ``ingest/events.parquet``, ``ingest/items.parquet``, ``encode/items.parquet``,
``cluster/centroids.npy``, ``cluster/assignments.parquet``. Optional: ``dynamics/{clusters,lineage}.json``, ``dynamics/assignments.parquet``,
``graph/{users,items}.parquet``, ``recommend/item_item.parquet`` (the seq term's table, written by
``publish``), the fused params (the evaluation's tuned ``fused`` row from ``manifest.json`` or
``evaluate/summary.json``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from interestrec import artifacts, layout
from interestrec.data.schema import INTERACTION_KINDS
from interestrec.ids import IdMap, align, align_table, lookup
from interestrec.recommend.errors import ArtifactError, MissingArtifactError

EVENTS = layout.rel(layout.INGEST, layout.INGEST_EVENTS)
ITEMS = layout.rel(layout.INGEST, layout.INGEST_ITEMS)
ITEM_VECTORS = layout.rel(layout.ENCODE, layout.ENCODE_ITEMS)
USERS = layout.rel(layout.ENCODE, layout.ENCODE_USERS)
CENTROIDS = layout.rel(layout.CLUSTER, layout.CLUSTER_CENTROIDS)
ASSIGNMENTS = layout.rel(layout.CLUSTER, layout.CLUSTER_ASSIGNMENTS)
# a required file -> the stage that writes it (for the error message)
REQUIRED = {EVENTS: layout.INGEST, ITEMS: layout.INGEST, ITEM_VECTORS: layout.ENCODE, CENTROIDS: layout.CLUSTER,
            ASSIGNMENTS: layout.CLUSTER}
INTERACTION_EVENTS = INTERACTION_KINDS


@dataclass
class ServingArtifacts:
    """Everything the recommender reads, as arrays in index space.

    Users and items are re-indexed densely; ``user_ids`` / ``item_ids`` map back (both sorted).

    Shapes:
        user_ids: ``(n_users,)`` int64 (users with at least one interaction); item_ids: ``(n_items,)`` int64.
        ev_user / ev_item / ev_time: ``(m,)`` interactions (all splits), sorted by user then time.
        ev_kind: ``(m,)`` object (event kind). item_vecs: ``(n_items, d)`` float32 unit rows (zeros when missing).
        centroids: ``(K, d)`` float32. user_cluster: ``(n_users,)`` int64, -1 when unassigned.
        graph_users: ``(n_users, g)``; graph_items: ``(n_items, g)`` or both ``None``.
    """

    root: str
    version: str
    user_ids: np.ndarray
    item_ids: np.ndarray
    ev_user: np.ndarray
    ev_item: np.ndarray
    ev_time: np.ndarray
    ev_kind: np.ndarray
    titles: dict[int, str]
    item_vecs: np.ndarray
    centroids: np.ndarray
    user_cluster: np.ndarray
    cluster_info: dict = field(default_factory=dict)
    lineage: dict = field(default_factory=dict)
    graph_users: np.ndarray | None = None
    graph_items: np.ndarray | None = None
    fused_params: dict = field(default_factory=dict)  # the evaluation's tuned fused params ({} = defaults)
    item_table: object | None = None  # recommend/item_item.parquet as sparse (n_items, n_items), when published
    genres: dict[int, list[str]] = field(default_factory=dict)
    dyn_user: np.ndarray | None = None  # dynamics/assignments.parquet: user index, window, stable id (optional)
    dyn_window: np.ndarray | None = None
    dyn_cluster: np.ndarray | None = None
    user_interests: list[np.ndarray | None] = field(default_factory=list)  # encode-stage interests (None = absent)
    user_map: IdMap | None = None  # ingest/ids/users.parquet: original user ids <-> the int64 ids above
    item_map: IdMap | None = None  # ingest/ids/items.parquet
    description_words: int = 0  # encode.item_description_words the item texts were written with


def resolve_root(path: str) -> str:
    """The directory holding the stage folders: a version dir, ``publish/LATEST`` of ``path``, or ``path``."""
    if artifacts.exists(artifacts.join(path, layout.PUBLISH_MANIFEST)):
        return path
    latest = artifacts.join(path, layout.PUBLISH, layout.PUBLISH_LATEST)
    if artifacts.exists(latest):
        return artifacts.join(path, layout.PUBLISH, artifacts.read_bytes(latest).decode().strip())
    return path


def tuned_params(root: str) -> dict:
    """The ``fused`` row's tuned params (manifest, then ``evaluate/summary.json``), else ``{}``."""
    for name in (layout.PUBLISH_MANIFEST, layout.rel(layout.EVALUATE, layout.SUMMARY)):
        p = artifacts.join(root, name)
        if not artifacts.exists(p):
            continue
        doc = artifacts.read_json(p)
        row = (doc.get("models") or doc.get("metrics") or {}).get("fused") or {}
        if row.get("params"):
            return dict(row["params"])
    return {}


def description_words(root: str) -> int:
    """The ``encode.item_description_words`` the item vectors were encoded with: the published manifest's
    config, else the encode stage's summary (an unpublished output), else ``0`` (written before it existed)."""
    manifest = artifacts.join(root, layout.PUBLISH_MANIFEST)
    if artifacts.exists(manifest):
        return int(((artifacts.read_json(manifest).get("config") or {}).get("encode") or {}).get("item_description_words", 0))
    summary = artifacts.join(root, layout.ENCODE, layout.SUMMARY)
    return int(artifacts.read_json(summary).get("item_description_words", 0)) if artifacts.exists(summary) else 0


def _need(root: str, rel: str) -> str:
    p = artifacts.join(root, rel)
    if not artifacts.exists(p):
        raise MissingArtifactError(f"missing artifact '{rel}' under {root} (written by the '{REQUIRED[rel]}' stage)")
    return p


def load_item_vectors(root: str, item_ids: np.ndarray, phase: str | None = None) -> np.ndarray:
    """Encode-stage item vectors aligned with sorted ``item_ids``; ``phase`` (``valid``/``test``) picks the
    evaluation phase's leak-free vectors (``encode.phases``), ``None`` the serving ones.

    Shapes:
        returns ``(n_items, d)`` float32.
    """
    from interestrec.encode.phases import item_vectors_path

    _need(root, ITEM_VECTORS)
    t = artifacts.read_parquet(item_vectors_path(root, phase))
    return align_table(t, item_ids)


def load_assignments(root: str, user_ids: np.ndarray) -> np.ndarray:
    """Cluster of each user in sorted ``user_ids`` (``-1`` when unassigned). Shapes: returns ``(n_users,)`` int64."""
    a = artifacts.read_parquet(_need(root, ASSIGNMENTS), columns=["user_id", "cluster"])
    out = np.full(len(user_ids), -1, np.int64)
    pos = lookup(user_ids, a["user_id"].to_numpy())
    ok = pos >= 0
    out[pos[ok]] = a["cluster"].to_numpy()[ok]
    return out


def load_graph(root: str, user_ids: np.ndarray, item_ids: np.ndarray) -> tuple[np.ndarray | None, np.ndarray | None]:
    """GraphSAGE embeddings aligned with ``user_ids`` / ``item_ids``, or ``(None, None)`` without a graph stage.

    Shapes:
        returns ``(n_users, g)``, ``(n_items, g)`` float32.
    """
    up, ip = (artifacts.join(root, layout.GRAPH, name) for name in (layout.GRAPH_USERS, layout.GRAPH_ITEMS))
    if not (artifacts.exists(up) and artifacts.exists(ip)):
        return None, None
    gu, gi = artifacts.read_parquet(up), artifacts.read_parquet(ip)
    gi_v = artifacts.arrow_to_vectors(gi["vector"])
    return (align(gu["user_id"].to_numpy(), artifacts.arrow_to_vectors(gu["vector"]), user_ids, gi_v.shape[1]),
            align(gi["item_id"].to_numpy(), gi_v, item_ids))


def load_interests(root: str, user_ids: np.ndarray) -> list[np.ndarray | None]:
    """Encode-stage interests (``window == -1`` rows of ``encode/users.parquet``) per user in ``user_ids``.

    ``None`` for users without a row or without interests (the caller recomputes those).

    Shapes:
        returns per user ``(m_u, d)`` float32.
    """
    import pyarrow.compute as pc

    out: list[np.ndarray | None] = [None] * len(user_ids)
    p = artifacts.join(root, USERS)
    if not artifacts.exists(p):
        return out
    t = artifacts.read_parquet(p, columns=["user_id", "window", "interests"])
    t = t.filter(pc.equal(t["window"], -1))
    if t.num_rows == 0:
        return out
    col = t["interests"].combine_chunks()
    counts = pc.list_value_length(col).fill_null(0).to_numpy(zero_copy_only=False)
    flat = pc.list_flatten(col)
    vecs = flat.field("vector")
    lengths = pc.list_value_length(vecs).to_numpy(zero_copy_only=False)
    if len(lengths) == 0:
        return out
    d = int(lengths[0])
    if (lengths != d).any():
        raise ArtifactError(f"{USERS} under {root}: interest vectors of different lengths")
    mat = pc.list_flatten(vecs).to_numpy(zero_copy_only=False).astype(np.float32).reshape(-1, d)
    starts = np.r_[0, np.cumsum(counts)]
    pos = lookup(user_ids, t["user_id"].to_numpy())
    for r, u in enumerate(pos):
        if u >= 0 and counts[r] > 0:
            out[u] = mat[starts[r]:starts[r + 1]]
    return out


def load_id_maps(root: str, user_ids: np.ndarray, item_ids: np.ndarray) -> tuple[IdMap, IdMap]:
    """The ingest's ``ids/{users,items}.parquet`` maps; identity maps over ``user_ids`` / ``item_ids`` for an
    output written before ids were mapped (its ids are the originals)."""
    out = []
    for name, ids in ((layout.INGEST_USER_IDS, user_ids), (layout.INGEST_ITEM_IDS, item_ids)):
        p = artifacts.join(root, layout.INGEST, name)
        out.append(IdMap.from_parquet(p) if artifacts.exists(p) else IdMap.identity(ids))
    return out[0], out[1]


def load(path: str) -> ServingArtifacts:
    """Read an artifact directory into :class:`ServingArtifacts`.

    Raises:
        ArtifactError: a required file is missing (named, with the stage that writes it) or the
            centroids' dimension differs from the item vectors'.
    """
    root = resolve_root(path)
    manifest = artifacts.join(root, layout.PUBLISH_MANIFEST)
    version = str(artifacts.read_json(manifest)["version"]) if artifacts.exists(manifest) else "unpublished"
    ev = artifacts.read_parquet(_need(root, EVENTS), columns=["user_id", "item_id", "timestamp", "event"])
    items = artifacts.read_parquet(_need(root, ITEMS))
    for col in ("item_id", "title"):
        if col not in items.column_names:
            raise ArtifactError(f"{ITEMS} under {root} has no '{col}' column")
    kind = ev["event"].to_numpy(zero_copy_only=False).astype(object)
    keep = np.isin(kind, INTERACTION_EVENTS)
    uid, iid, ts = ev["user_id"].to_numpy()[keep], ev["item_id"].to_numpy()[keep], ev["timestamp"].to_numpy()[keep]
    user_ids = np.unique(uid)
    item_ids = np.unique(np.r_[items["item_id"].to_numpy(), iid])
    u, i = lookup(user_ids, uid), lookup(item_ids, iid)
    order = np.lexsort((i, ts, u))
    item_vecs = load_item_vectors(root, item_ids)
    centroids = np.asarray(artifacts.read_npy(_need(root, CENTROIDS)), np.float32)
    if centroids.ndim != 2 or centroids.shape[1] != item_vecs.shape[1]:
        raise ArtifactError(f"{CENTROIDS} has shape {centroids.shape}; expected (K, {item_vecs.shape[1]}) "
                            f"like {ITEM_VECTORS}'s vectors")
    cj = artifacts.join(root, layout.DYNAMICS, layout.DYNAMICS_CLUSTERS)
    lj = artifacts.join(root, layout.DYNAMICS, layout.DYNAMICS_LINEAGE)
    from interestrec.recommend.itemitem import TABLE_FILE, read_table

    tp = artifacts.join(root, TABLE_FILE)
    gu, gi = load_graph(root, user_ids, item_ids)
    dyn = [None, None, None]
    dp = artifacts.join(root, layout.DYNAMICS, layout.DYNAMICS_ASSIGNMENTS)
    if artifacts.exists(dp):
        d = artifacts.read_parquet(dp, columns=["user_id", "window", "cluster"])
        pos = lookup(user_ids, d["user_id"].to_numpy())
        ok = pos >= 0
        dyn = [pos[ok], d["window"].to_numpy()[ok].astype(np.int64), d["cluster"].to_numpy()[ok].astype(np.int64)]
    maps = load_id_maps(root, user_ids, item_ids)
    genres = (dict(zip(items["item_id"].to_pylist(), [g or [] for g in items["genres"].to_pylist()]))
              if "genres" in items.column_names else {})
    return ServingArtifacts(
        root=root, version=version, user_ids=user_ids, item_ids=item_ids,
        ev_user=u[order].astype(np.int64), ev_item=i[order].astype(np.int64), ev_time=ts[order].astype(np.int64),
        ev_kind=kind[keep][order],
        titles=dict(zip(items["item_id"].to_pylist(), items["title"].to_pylist())),
        item_vecs=item_vecs, centroids=centroids, user_cluster=load_assignments(root, user_ids),
        cluster_info=artifacts.read_json(cj) if artifacts.exists(cj) else {},
        lineage=artifacts.read_json(lj) if artifacts.exists(lj) else {},
        graph_users=gu, graph_items=gi, fused_params=tuned_params(root), genres=genres,
        dyn_user=dyn[0], dyn_window=dyn[1], dyn_cluster=dyn[2], user_interests=load_interests(root, user_ids),
        item_table=read_table(tp, item_ids) if artifacts.exists(tp) else None,
        user_map=maps[0], item_map=maps[1], description_words=description_words(root),
    )
