"""Seeded synthetic behaviour logs with planted, drifting interest clusters.

Each of ``n_clusters`` topics owns a slice of the item catalog; item titles, genres and tags carry the
topic's words (so a language model separates topics too) and ``item_vectors`` sit near a topic centre
(so clustering can be tested without a language model). Every user belongs to one interest cluster per
time window; between consecutive windows a ``drift_rate`` share of users switches to another cluster.
In each window a user's events come mostly (``focus``) from their cluster's topic. Activity per user is
heavy-tailed (lognormal) with the requested mean, and every user has at least one event per window.

Everything is vectorised numpy: 1M users × 50 events generate in seconds per core.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

TOPICS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("Sci-Fi", "space opera", ("starships", "galactic empire", "aliens")),
    ("Cooking", "kitchen", ("recipes", "baking", "street food")),
    ("Jazz", "jazz club", ("saxophone", "bebop", "improvisation")),
    ("Horror", "haunted house", ("ghosts", "slasher", "gore")),
    ("Romance", "love story", ("wedding", "heartbreak", "first date")),
    ("Western", "frontier town", ("cowboys", "gunfight", "outlaws")),
    ("Documentary", "nature film", ("wildlife", "oceans", "climate")),
    ("Animation", "cartoon adventure", ("talking animals", "family", "musical")),
    ("War", "battlefield", ("soldiers", "world war", "resistance")),
    ("Crime", "detective story", ("heist", "noir", "mafia")),
    ("Fantasy", "dragon quest", ("wizards", "swords", "elves")),
    ("Sports", "championship", ("football", "underdog", "coach")),
    ("Comedy", "office farce", ("satire", "slapstick", "awkward")),
    ("Thriller", "spy mission", ("espionage", "conspiracy", "chase")),
    ("History", "royal court", ("kings", "empire", "revolution")),
    ("Music", "rock tour", ("guitar", "band", "concert")),
)
_ADJ = ("Lost", "Silent", "Golden", "Broken", "Hidden", "Last", "Secret", "Wild", "Dark", "Bright", "Endless", "Little")
_KINDS = ("rate", "view", "click", "purchase")
_KIND_P = (0.8, 0.1, 0.07, 0.03)


@dataclass(frozen=True)
class SyntheticData:
    """A generated dataset with its ground truth.

    Attributes:
        events: event table (``interestrec.data.schema.event_schema``).
        items: item catalog (``item_schema``).
        item_vectors: unit vectors near each item's topic centre. Shape ``(n_items, dim)`` float32.
        item_topic: topic (= planted cluster) of each item. Shape ``(n_items,)``.
        truth: table ``user_id, window, cluster`` — each user's planted cluster in each window.
        window_bounds: ``[start, end)`` of each window. Shape ``(n_windows, 2)`` int64.
        drift_rate: the share of users asked to switch cluster between consecutive windows.
    """

    events: object
    items: object
    item_vectors: np.ndarray
    item_topic: np.ndarray
    truth: object
    window_bounds: np.ndarray
    drift_rate: float


def topic_name(t: int) -> str:
    """Readable name of topic ``t`` (topics beyond the vocabulary get a numbered variant)."""
    genre, noun, _ = TOPICS[t % len(TOPICS)]
    return f"{genre} {noun}" + (f" {t // len(TOPICS) + 1}" if t >= len(TOPICS) else "")


def generate(
    n_users: int = 1000,
    n_items: int = 2000,
    n_clusters: int = 8,
    n_windows: int = 4,
    events_per_user: int = 50,
    drift_rate: float = 0.2,
    dim: int = 32,
    seed: int = 0,
    start_ts: int = 1_500_000_000,
    window_seconds: int = 90 * 86400,
    focus: float = 0.85,
    item_noise: float = 0.35,
) -> SyntheticData:
    """Generate a seeded synthetic dataset (see the module docstring)."""
    import pyarrow as pa

    from interestrec.data.schema import event_schema, item_schema

    if n_clusters < 1 or n_items < n_clusters or n_windows < 1 or n_users < 1:
        raise ValueError("need n_users >= 1, n_windows >= 1 and n_items >= n_clusters >= 1")
    if not 0.0 <= drift_rate <= 1.0:
        raise ValueError("drift_rate must be in [0, 1]")
    rng = np.random.default_rng(seed)

    # catalog: topics own contiguous id ranges, items near their topic centre
    item_topic = np.sort(rng.integers(0, n_clusters, n_items))
    item_topic[:n_clusters] = np.arange(n_clusters)  # every topic has items
    item_topic.sort()
    offsets = np.searchsorted(item_topic, np.arange(n_clusters + 1))
    centres = rng.standard_normal((n_clusters, dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    vec = centres[item_topic] + item_noise * rng.standard_normal((n_items, dim)).astype(np.float32) / np.sqrt(dim)
    vec /= np.linalg.norm(vec, axis=1, keepdims=True)
    item_ids = np.arange(1, n_items + 1, dtype=np.int64)
    adj = rng.integers(0, len(_ADJ), n_items)
    titles = [f"The {_ADJ[a]} {topic_name(t).split(' ', 1)[1].title()} {i}" for a, t, i in zip(adj, item_topic, item_ids)]
    genres = [[TOPICS[t % len(TOPICS)][0]] for t in item_topic]
    tags = [list(TOPICS[t % len(TOPICS)][2][: 1 + (i % 3)]) for t, i in zip(item_topic, item_ids)]
    years = (1970 + (item_ids * 7919) % 50).astype(np.int32)
    items = pa.table([item_ids, titles, years, genres, tags], schema=item_schema())

    # planted clusters per window with drift
    clusters = np.empty((n_users, n_windows), dtype=np.int32)
    clusters[:, 0] = rng.integers(0, n_clusters, n_users)
    for w in range(1, n_windows):
        move = rng.random(n_users) < drift_rate
        step = rng.integers(1, max(n_clusters, 2), n_users) if n_clusters > 1 else np.zeros(n_users, np.int64)
        clusters[:, w] = np.where(move, (clusters[:, w - 1] + step) % n_clusters, clusters[:, w - 1])

    # heavy-tailed activity, >= 1 event per window
    sigma = 0.8
    raw = rng.lognormal(np.log(max(events_per_user, 1)) - sigma**2 / 2, sigma, n_users)
    n_ev = np.maximum(np.rint(raw).astype(np.int64), n_windows)
    total = int(n_ev.sum())
    user_idx = np.repeat(np.arange(n_users), n_ev)
    starts = np.cumsum(n_ev) - n_ev
    pos = np.arange(total) - np.repeat(starts, n_ev)
    window = np.where(pos < n_windows, pos, rng.integers(0, n_windows, total)).astype(np.int32)

    cl = clusters[user_idx, window]
    on_topic = rng.random(total) < focus
    size = (offsets[cl + 1] - offsets[cl]).astype(np.float64)
    in_topic = offsets[cl] + np.minimum((rng.random(total) ** 2 * size).astype(np.int64), size.astype(np.int64) - 1)
    item = np.where(on_topic, in_topic, rng.integers(0, n_items, total))
    ts = start_ts + window.astype(np.int64) * window_seconds + rng.integers(0, window_seconds, total)
    kind = rng.choice(len(_KINDS), total, p=_KIND_P).astype(np.int8)
    rating = np.clip(np.rint(rng.normal(np.where(on_topic, 4.2, 2.6), 0.7) * 2) / 2, 0.5, 5.0).astype(np.float32)
    is_rate = kind == 0

    events = pa.table(
        [
            pa.array(user_idx.astype(np.int64) + 1),
            pa.array(item_ids[item]),
            pa.array(ts),
            pa.DictionaryArray.from_arrays(pa.array(kind), pa.array(_KINDS)).cast(pa.string()),
            pa.array(rating, mask=~is_rate),
            pa.nulls(total, pa.string()),
        ],
        schema=event_schema(),
    )
    truth = pa.table(
        {
            "user_id": pa.array(np.repeat(np.arange(1, n_users + 1, dtype=np.int64), n_windows)),
            "window": pa.array(np.tile(np.arange(n_windows, dtype=np.int32), n_users)),
            "cluster": pa.array(clusters.reshape(-1)),
        }
    )
    bounds = np.stack([start_ts + np.arange(n_windows) * window_seconds, start_ts + np.arange(1, n_windows + 1) * window_seconds], 1)
    return SyntheticData(events, items, vec.astype(np.float32), item_topic, truth, bounds.astype(np.int64), drift_rate)


def write_shards(data: SyntheticData, out_dir: str, rows_per_shard: int = 1_000_000) -> list[str]:
    """Write ``events-NNNNN.parquet`` shards, ``items.parquet``, ``truth.parquet`` and ``item_vectors.npy``.

    Returns the shard paths. Every file is written atomically.
    """
    from interestrec import artifacts

    paths = []
    n = data.events.num_rows
    for k, lo in enumerate(range(0, max(n, 1), rows_per_shard)):
        path = artifacts.join(out_dir, f"events-{k:05d}.parquet")
        artifacts.write_parquet(path, data.events.slice(lo, rows_per_shard))
        paths.append(path)
    artifacts.write_parquet(artifacts.join(out_dir, "items.parquet"), data.items)
    artifacts.write_parquet(artifacts.join(out_dir, "truth.parquet"), data.truth)
    artifacts.write_npy(artifacts.join(out_dir, "item_vectors.npy"), data.item_vectors)
    return paths
