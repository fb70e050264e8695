"""Leak-free item texts: event-derived item attributes per evaluation phase.

An item's text has static parts from the catalog (title, year, genres) and event-derived parts (its
most used tags; its reviews are blended into its vector by :mod:`interestrec.encode.reviews` from the
same events). The event-derived parts of a phase come only from the events that phase may learn
from, so no phase's item text, vector, graph or score can see its held-out period:

- ``valid``: the ``train`` split (the validation phase learns from train);
- ``test``: ``train`` + ``valid``;
- ``serve``: every split (what is published and served).

The catalog's own ``tags`` list is used only when the events hold no tag events at all (then it is
static metadata); with tag events present it is ignored, because readers such as MovieLens aggregate
it over every period. The encode stage writes one vector file per phase (:data:`PHASE_FILES`) and
encodes each distinct text once (items whose text is the same in several phases share one forward
pass); :func:`item_vectors_path` is how every reader finds the phase's file.
"""

from __future__ import annotations

import numpy as np

from interestrec import layout

PHASE_SPLITS: dict[str, tuple[str, ...] | None] = {"valid": ("train",), "test": ("train", "valid"), "serve": None}
PHASE_FILES = {"valid": layout.ENCODE_ITEMS_VALID, "test": layout.ENCODE_ITEMS_TEST, "serve": layout.ENCODE_ITEMS}


def phase_splits(phase: str) -> tuple[str, ...] | None:
    """The splits whose events a phase may learn from (``None`` = every split)."""
    if phase not in PHASE_SPLITS:
        raise ValueError(f"unknown phase '{phase}'; expected one of {sorted(PHASE_SPLITS)}")
    return PHASE_SPLITS[phase]


def tag_events(events):
    """``(item_id, split, tag)`` of the non-empty tag events (tags stripped and lower-cased).

    Shapes:
        returns three ``(t,)`` arrays (int64, object, object).
    """
    cols = set(events.column_names)
    if "text" not in cols:
        return np.zeros(0, np.int64), np.zeros(0, object), np.zeros(0, object)
    kind = np.asarray(events["event"].to_numpy(zero_copy_only=False)).astype(str)
    text = np.asarray(events["text"].to_numpy(zero_copy_only=False), dtype=object)
    split = (np.asarray(events["split"].to_numpy(zero_copy_only=False), dtype=object) if "split" in cols
             else np.full(len(kind), "train", dtype=object))
    m = (kind == "tag") & np.asarray([x is not None and str(x).strip() != "" for x in text], bool)
    tags = np.asarray([str(x).strip().lower() for x in text[m]], dtype=object)
    return events["item_id"].to_numpy()[m].astype(np.int64), split[m], tags


def item_tags(item: np.ndarray, split: np.ndarray, tag: np.ndarray, splits: tuple[str, ...] | None,
              max_tags: int = 5) -> dict[int, list[str]]:
    """Each item's most used tags among the tag events of ``splits`` (count descending, then name).

    The order is the one the knowledge graph uses for ``item –has_tag→ tag``.

    Shapes:
        item, split, tag: ``(t,)``; returns ``{item_id: [tag, ...]}`` with at most ``max_tags`` tags each.
    """
    keep = np.ones(len(item), bool) if splits is None else np.isin(split.astype(str), list(splits))
    counts: dict[int, dict[str, int]] = {}
    for i, t in zip(item[keep].tolist(), tag[keep].tolist()):
        c = counts.setdefault(int(i), {})
        c[t] = c.get(t, 0) + 1
    return {i: [t for t, _ in sorted(c.items(), key=lambda kv: (-kv[1], kv[0]))[:max_tags]] for i, c in counts.items()}


def catalogue_descriptions(items, words: int) -> list[str | None]:
    """Each catalogue row's ``description`` where item texts show ``words`` > 0 of it, else ``None`` for every
    row (a catalogue without the column has none)."""
    if words and "description" in items.column_names:
        return items["description"].to_pylist()
    return [None] * items.num_rows


def phase_item_texts(items, events, phase: str, max_tags: int = 5, description_words: int = 0
                     ) -> tuple[np.ndarray, list[str]]:
    """Sorted item ids and their texts for one phase (see the module docstring).

    Args:
        items: ingest ``items`` table (``item_id, title, year, genres`` and optionally ``tags``).
        events: ingest ``events`` table with its ``split`` column.
        phase: ``valid``, ``test`` or ``serve``.
        max_tags / description_words: as :func:`~interestrec.encode.text.item_text` (a catalogue without a
            ``description`` column has none).
    """
    from interestrec.encode.text import item_text

    splits = phase_splits(phase)
    cols = set(items.column_names)
    d = items.select(["item_id", "title", "year", "genres"]).to_pydict()
    ids = np.asarray(d["item_id"], np.int64)
    if len(np.unique(ids)) != len(ids):
        raise ValueError("items table has duplicate item_id values")
    ti, ts, tt = tag_events(events)
    if len(ti):
        by_item = item_tags(ti, ts, tt, splits, max_tags)
        tags = [by_item.get(int(i), []) for i in ids.tolist()]
    else:
        tags = items["tags"].to_pylist() if "tags" in cols else [None] * len(ids)
    descs = catalogue_descriptions(items, description_words)
    texts = [item_text(t, y, g, tg, max_tags, de, description_words)
             for t, y, g, tg, de in zip(d["title"], d["year"], d["genres"], tags, descs)]
    order = np.argsort(ids, kind="stable")
    return ids[order], [texts[i] for i in order]


def distinct_texts(per_phase: dict[str, list[str]]) -> tuple[list[str], dict[str, np.ndarray]]:
    """Each distinct text once, and every phase's rows as indices into them (encode each text once).

    Returns:
        ``(unique texts, {phase: (n_items,) int64 index into them})``.
    """
    index: dict[str, int] = {}
    rows = {}
    for phase, texts in per_phase.items():
        rows[phase] = np.asarray([index.setdefault(t, len(index)) for t in texts], np.int64)
    return list(index), rows


def item_vectors_path(root: str, phase: str | None = None) -> str:
    """Path of the encode stage's item vectors for ``phase`` (``None`` = serving).

    Outputs written before per-phase vectors existed have only ``encode/items.parquet``; it is returned
    for every phase then.
    """
    from interestrec import artifacts

    serve = artifacts.join(root, layout.ENCODE, PHASE_FILES["serve"])
    if phase is None or phase == "serve":
        return serve
    phase_splits(phase)
    p = artifacts.join(root, layout.ENCODE, PHASE_FILES[phase])
    return p if artifacts.exists(p) else serve
