"""The knowledge graph's item attributes and tag uses, as ``(node index, label)`` pairs with each attribute's
sorted labels (the vocabularies of the ``genre``, ``decade`` and ``tag`` nodes); :mod:`interestrec.graph.kg`
turns them into nodes and relations.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from interestrec.graph.kg_inputs import GraphInputs, GraphParams, TagEvents
from interestrec.ids import lookup

Pairs = tuple[np.ndarray, np.ndarray]


def _explode(ids: np.ndarray, lists, limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(id, element)`` pairs of a list column, keeping the first ``limit`` elements of each list."""
    rows, vals = [], []
    for i, xs in zip(ids, lists):
        if xs is None:
            continue
        xs = list(xs)[:limit] if limit else list(xs)
        rows.extend([i] * len(xs))
        vals.extend(xs)
    return np.asarray(rows, np.int64), np.asarray(vals, dtype=object)


@dataclass(frozen=True)
class Attributes:
    """Item attributes and tag uses as ``(node index, label)`` pairs, with each attribute's sorted labels."""

    genre: Pairs
    decade: Pairs
    item_tag: Pairs
    user_tag: TagEvents  # (user_idx, item_idx, time, tag) of the tag events; empty arrays without them
    genres: list
    decades: list
    tags: list


def _catalog_pairs(items, item_ids: np.ndarray, max_tags: int, with_tags: bool) -> tuple[Pairs, Pairs, Pairs]:
    """``(item, genre)``, ``(item, decade)`` and (when ``with_tags``) ``(item, tag)`` pairs of the catalog."""
    genre = (np.zeros(0, np.int64), np.zeros(0, object))
    decade = (np.zeros(0, np.int64), np.zeros(0, np.int64))
    tags = (np.zeros(0, np.int64), np.zeros(0, object))
    if items is None:
        return genre, decade, tags
    cols = set(items.column_names)
    ii = lookup(item_ids, items["item_id"].to_numpy())
    keep = ii >= 0
    if "genres" in cols:
        genre = _explode(ii[keep], np.asarray(items["genres"].to_pylist(), dtype=object)[keep])
    if "year" in cols:
        year = np.asarray(items["year"].to_numpy(zero_copy_only=False), dtype=float)[keep]
        ok = np.isfinite(year)
        decade = (ii[keep][ok], (year[ok] // 10 * 10).astype(np.int64))
    if "tags" in cols and with_tags:
        tags = _explode(ii[keep], np.asarray(items["tags"].to_pylist(), dtype=object)[keep], max_tags)
    return genre, decade, tags


def _top_item_tags(item: np.ndarray, tag: np.ndarray, max_tags: int) -> Pairs:
    """``(item, tag)`` pairs of each item's ``max_tags`` most used tags (ties by name)."""
    counts: dict[tuple[int, str], int] = {}
    for i, t in zip(item, tag):
        counts[(int(i), t)] = counts.get((int(i), t), 0) + 1
    by_item: dict[int, list[tuple[int, str]]] = {}
    for (i, t), c in counts.items():
        by_item.setdefault(i, []).append((-c, t))
    rows, tags = [], []
    for i, lst in by_item.items():
        for _, t in sorted(lst)[:max_tags]:
            rows.append(i)
            tags.append(t)
    return np.asarray(rows, np.int64), np.asarray(tags, dtype=object)


def attributes(inputs: GraphInputs, params: GraphParams) -> Attributes:
    """Catalog attributes, item tags (from the tag events, else the catalog) and the label vocabularies."""
    genre, decade, catalog_tags = _catalog_pairs(inputs.items, inputs.item_ids, params.max_tags,
                                                 with_tags=inputs.tag_events is None)
    if inputs.tag_events is not None:
        tu, ti, tt, tag = (np.asarray(a) for a in inputs.tag_events)
        tag = tag.astype(str)
        item_tag = _top_item_tags(ti, tag, params.max_tags)
    else:
        item_tag = catalog_tags
        tu = ti = tt = tag = np.zeros(0)
    tags = sorted({str(t) for t in item_tag[1]} | ({str(t) for t in tag} if params.user_tags else set()))
    return Attributes(genre=genre, decade=decade, item_tag=item_tag, user_tag=(tu, ti, tt, tag),
                       genres=sorted({str(g) for g in genre[1]}), decades=sorted({int(d) for d in decade[1]}),
                       tags=tags)
