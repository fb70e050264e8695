"""Item vectors of every evaluation phase: catalogue texts (``encode.phases``) blended with reviews
(``encode.reviews``), then the phase's geometry (``encode.geometry``), each distinct text encoded once."""

from __future__ import annotations

import numpy as np

from interestrec.encode.config import EncodeConfig
from interestrec.encode.phases import PHASE_FILES, distinct_texts, phase_item_texts
from interestrec.encode.reviews import Reviews, blend, phase_reviews, review_summary


def encode_phase_items(items, events, cfg: EncodeConfig, known: dict[str, np.ndarray] | None = None,
                       reviews: Reviews | None = None):
    """Item vectors of every phase (``encode.phases``), each distinct text encoded once.

    Each phase's catalogue-text vectors are blended with the item's reviews among the phase's training
    events (``encode.reviews``; items without reviews keep them); then, with ``cfg.whiten``, transformed by
    a whitening fitted on that phase's catalogue (``encode.geometry``). Texts in ``known`` (text → vector,
    :func:`interestrec.encode.stage.adapt_vectors`) are not encoded again.

    Returns:
        ``(ids, {phase: texts}, {phase: vectors (n_items, d)}, geometry summary, item-text throughput,
        review summary)``.
    """
    from interestrec.encode.geometry import fit_whitening, mean_pairwise_cosine
    from interestrec.encode.ray_encode import EncodeStats, encode_texts_timed

    per_phase, ids = {}, None
    for phase in PHASE_FILES:
        ids, per_phase[phase] = phase_item_texts(items, events, phase, cfg.max_tags, cfg.item_description_words)
    if not len(ids):
        raise ValueError("the ingest item catalog is empty")
    unique, rows = distinct_texts(per_phase)
    known = known or {}
    todo = [i for i, t in enumerate(unique) if t not in known]
    stats = EncodeStats(0, 0, 0.0)
    if todo:
        _, fresh, stats = encode_texts_timed(np.arange(len(todo)), [unique[i] for i in todo], cfg,
                                             label="encode: item texts")
    dim = fresh.shape[1] if todo else len(next(iter(known.values())))
    vecs = np.zeros((len(unique), dim), np.float32)
    if todo:
        vecs[todo] = fresh
    for i in np.setdiff1d(np.arange(len(unique)), todo).tolist():
        vecs[i] = known[unique[i]]
    has_reviews = reviews is not None and len(reviews) > 0 and cfg.review_weight > 0
    pr = phase_reviews(reviews, ids, cfg) if has_reviews else None
    out, geometry = {}, {"whiten": cfg.whiten}
    for phase, r in rows.items():
        raw = vecs[r] if pr is None else blend(vecs[r], pr.means[phase], pr.counts[phase], cfg.review_weight)
        w = fit_whitening(raw, cfg.whiten, cfg.whiten_pcs)
        out[phase] = w.transform(raw)
        geometry[phase] = {"mean_cosine_before": round(mean_pairwise_cosine(raw), 4),
                           "mean_cosine_after": round(mean_pairwise_cosine(out[phase]), 4)}
    return ids, per_phase, out, geometry, stats.summary(), review_summary(pr, cfg.review_weight)
