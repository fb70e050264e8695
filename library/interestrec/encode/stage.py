"""The ``encode`` stage: item vectors with the language model on Ray Data, then user vectors.

Users are encoded two ways (``encode.user_mode`` picks the one stored as ``vector``):
``pool`` — recency-decayed mean of the user's item vectors; ``text`` — the language model over the
rendered history text. ``window = -1`` rows use the user's *train* events only (the evaluation never
sees its held-out items); per-window rows use the ``lookback_days`` before each window's end.
With ``also_text`` the train-history texts are encoded in pool mode too (``users_text.parquet``) so
both modes are measured and comparable.

Item vectors are written per phase (``encode.phases``): ``items_valid.parquet`` and
``items_test.parquet`` from item texts whose event-derived parts (tags) come only from the phase's
training events, ``items.parquet`` from every event (serving). The ``window = -1`` user rows describe
train histories and use the ``valid`` phase's items; per-window rows use the serving ones.
"""

from __future__ import annotations

import time

import numpy as np

from interestrec import artifacts
from interestrec.encode.config import EncodeConfig
from interestrec.encode.interests import user_interests
from interestrec.encode.phases import PHASE_FILES, distinct_texts, phase_item_texts
from interestrec.encode.pooling import decay, event_weights, pool_user_vectors, window_user_vectors
from interestrec.encode.text import SEP, budget_histories, event_text, item_text
from interestrec.ids import lookup
from interestrec.stages import StageContext, StageError

USER_MODES = ("pool", "text")


def interest_type():
    """Arrow type of the ``interests`` column."""
    import pyarrow as pa

    return pa.list_(pa.struct([("vector", pa.list_(pa.float32())), ("medoid_item_id", pa.int64()),
                               ("importance", pa.float32()), ("size", pa.int32())]))


def item_texts(items) -> tuple[np.ndarray, list[str]]:
    """Item ids (sorted) and their texts from the catalog's own columns, ``tags`` included (throughput
    benchmarks; the stage itself uses :func:`interestrec.encode.phases.phase_item_texts`)."""
    d = items.select(["item_id", "title", "year", "genres", "tags"]).to_pydict()
    ids = np.asarray(d["item_id"], np.int64)
    if len(np.unique(ids)) != len(ids):
        raise StageError("encode: items.parquet has duplicate item_id values")
    texts = [item_text(t, y, g, tg) for t, y, g, tg in zip(d["title"], d["year"], d["genres"], d["tags"])]
    order = np.argsort(ids, kind="stable")
    return ids[order], [texts[i] for i in order]


def known_events(events, item_ids: np.ndarray):
    """Events as a DataFrame with ``iidx`` (row of ``item_ids``); events of unknown items dropped and counted."""
    cols = ["user_id", "item_id", "timestamp", "event", "value", "text"]
    ev = events.select(cols + (["split"] if "split" in events.column_names else [])).to_pandas()
    iid = ev.item_id.to_numpy()
    pos = lookup(item_ids, iid)
    known = pos >= 0
    ev = ev[known].assign(iidx=pos[known])
    return ev, int((~known).sum())


def history_texts(ev, texts: list[str], encoder, max_tokens: int) -> tuple[np.ndarray, list[str], np.ndarray]:
    """Per-user history texts, newest first, oldest entries dropped to fit ``max_tokens``.

    Args:
        ev: events from :func:`known_events`. texts: item texts aligned with ``iidx``.
        encoder: a :class:`~interestrec.encode.encoder.TextEncoder` (only its tokenizer is used).

    Returns:
        sorted user ids, their texts, and the entries kept per user (0 = nothing fits: an empty history).
    """
    ev = ev.sort_values(["user_id", "timestamp", "item_id"], ascending=[True, False, False], kind="stable")
    values = ev.value.to_numpy(dtype=np.float64, na_value=np.nan)
    entries = [event_text(texts[i], e, v, t) for i, e, v, t in
               zip(ev.iidx.tolist(), ev.event.tolist(), values.tolist(), ev.text.tolist())]
    users, starts = np.unique(ev.user_id.to_numpy(), return_index=True)
    starts = np.append(starts, len(entries))
    toks = encoder.token_counts(entries)
    htexts, kept = budget_histories(starts, entries, toks, int(encoder.token_counts([SEP])[0]), max_tokens)
    return users.astype(np.int64), htexts, kept


def train_user_vectors(ev, item_ids: np.ndarray, item_vecs: np.ndarray, cfg: EncodeConfig):
    """Pooled ``window = -1`` vectors and interests from train events, decayed to each user's last event.

    Shapes:
        returns users ``(u,)``, vectors ``(u, d)``, n_events ``(u,)`` and ``u`` interest lists.
    """
    users, uidx = np.unique(ev.user_id.to_numpy(), return_inverse=True)
    uidx = uidx.reshape(-1)
    ts = ev.timestamp.to_numpy()
    pos = ev.iidx.to_numpy()
    last = np.full(len(users), np.iinfo(np.int64).min, np.int64)
    np.maximum.at(last, uidx, ts)
    w = event_weights(ev.event.to_numpy(), ev.value.to_numpy(dtype=np.float64, na_value=np.nan))
    vec, n = pool_user_vectors(uidx, pos, ts, w, item_vecs, len(users), last[uidx], cfg.half_life_days)
    dw = w * decay(ts, last[uidx], cfg.half_life_days)
    order = np.lexsort((ts, uidx))
    bounds = np.searchsorted(uidx[order], np.arange(len(users) + 1))
    interests = []
    for u in range(len(users)):
        sel = order[bounds[u] : bounds[u + 1]]
        its = user_interests(item_ids[pos[sel]], item_vecs[pos[sel]], dw[sel], cfg.max_interests,
                             max_distance=cfg.interest_distance)
        interests.append([{"vector": i.vector.tolist(), "medoid_item_id": i.medoid_item_id, "importance": i.importance,
                           "size": i.size} for i in its])
    return users, vec, n, interests


def text_user_vectors(groups, texts: list[str], encoder, cfg: EncodeConfig):
    """Language-model user vectors of rendered histories, for several event subsets in one Ray Data pass.

    Args:
        groups: ``(window, events)`` pairs (events from :func:`known_events`); ``window = -1`` = train history.

    Returns:
        a table ``user_id, window, vector, n_events, kept`` with a row per user and group; users whose newest
        entry alone exceeds the budget (``kept = 0``) get a zero vector, never NaN.
    """
    import pyarrow as pa

    from interestrec.encode.ray_encode import encode_texts

    users, wins, htexts, kept, n_ev = [], [], [], [], []
    for window, ev in groups:
        u, ht, k = history_texts(ev, texts, encoder, cfg.max_tokens - 2)  # room for [CLS] and [SEP]
        users.append(u)
        wins.append(np.full(len(u), window, np.int32))
        htexts += ht
        kept.append(k)
        n_ev.append(np.bincount(lookup(u, ev.user_id.to_numpy()), minlength=len(u)).astype(np.int32))
    if not groups:
        raise ValueError("text_user_vectors: no event groups")
    kept_all = np.concatenate(kept)
    vec = np.zeros((len(kept_all), encoder.dim), np.float32)
    ok = np.flatnonzero(kept_all > 0)
    if len(ok):
        _, vec[ok] = encode_texts(ok, [htexts[i] for i in ok.tolist()], cfg)
    return pa.table({"user_id": pa.array(np.concatenate(users), pa.int64()),
                     "window": pa.array(np.concatenate(wins), pa.int32()),
                     "vector": artifacts.vectors_to_arrow(vec), "n_events": pa.array(np.concatenate(n_ev), pa.int32()),
                     "kept": pa.array(kept_all, pa.int32())})


def window_events(ev, windows, lookback_days: float) -> list[tuple[int, object]]:
    """``(window, events in [end − lookback, end))`` for each window."""
    ts = ev.timestamp.to_numpy()
    return [(int(w), ev[(ts < end) & (ts >= end - lookback_days * 86400)])
            for w, end in zip(windows["window"].to_pylist(), windows["end"].to_pylist())]


def adapt_vectors(ctx: StageContext, cfg: EncodeConfig) -> dict[str, np.ndarray]:
    """The adapt stage's base-model vectors by text, where they are what this stage would compute.

    Only with ``cfg.reuse_adapt_vectors``, when adapt's base model is this stage's model, and for texts
    within both stages' token budgets (so neither truncated them). ``{}`` otherwise.
    """
    path = artifacts.join(ctx.stage_dir("adapt"), "items.parquet")
    summary = artifacts.join(ctx.stage_dir("adapt"), "summary.json")
    if not cfg.reuse_adapt_vectors or not artifacts.exists(path) or not artifacts.exists(summary):
        return {}
    from interestrec.encode.encoder import load_tokenizer

    packaged = "all-MiniLM-L6-v2 (packaged)"  # how the adapt summary names the default model
    if artifacts.read_json(summary).get("base_model") != (cfg.model or packaged):
        return {}
    table = artifacts.read_parquet(path, columns=["text", "vector"])
    texts, vecs = table["text"].to_pylist(), artifacts.arrow_to_vectors(table["vector"])
    enc = load_tokenizer(cfg.model)(texts, add_special_tokens=False, return_attention_mask=False,
                                    return_token_type_ids=False)
    limit = min(ctx.config.adapt.max_tokens, cfg.max_tokens) - 2  # room for [CLS] and [SEP]
    return {t: v for t, v, ids in zip(texts, vecs, enc["input_ids"]) if len(ids) <= limit}


def encode_phase_items(items, events, cfg: EncodeConfig, known: dict[str, np.ndarray] | None = None):
    """Item vectors of every phase (``encode.phases``), each distinct text encoded once.

    With ``cfg.whiten`` each phase's vectors are transformed by a whitening fitted on that phase's
    catalogue (``encode.geometry``). Texts in ``known`` (text → vector, :func:`adapt_vectors`) are not
    encoded again.

    Returns:
        ``(ids, {phase: texts}, {phase: vectors (n_items, d)}, geometry summary, distinct texts encoded)``.
    """
    from interestrec.encode.geometry import fit_whitening, mean_pairwise_cosine
    from interestrec.encode.ray_encode import encode_texts

    per_phase, ids = {}, None
    for phase in PHASE_FILES:
        try:
            pid, per_phase[phase] = phase_item_texts(items, events, phase, cfg.max_tags)
        except ValueError as e:
            raise StageError(f"encode: {e}") from None
        ids = pid
    if not len(ids):
        raise StageError("encode: the ingest item catalog is empty")
    unique, rows = distinct_texts(per_phase)
    known = known or {}
    todo = [i for i, t in enumerate(unique) if t not in known]
    fresh = encode_texts(np.arange(len(todo)), [unique[i] for i in todo], cfg)[1] if todo else None
    dim = fresh.shape[1] if fresh is not None else len(next(iter(known.values())))
    vecs = np.zeros((len(unique), dim), np.float32)
    if todo:
        vecs[todo] = fresh
    for i in np.setdiff1d(np.arange(len(unique)), todo).tolist():
        vecs[i] = known[unique[i]]
    out, geometry = {}, {"whiten": cfg.whiten}
    for phase, r in rows.items():
        raw = vecs[r]
        w = fit_whitening(raw, cfg.whiten, cfg.whiten_pcs)
        out[phase] = w.transform(raw)
        geometry[phase] = {"mean_cosine_before": round(mean_pairwise_cosine(raw), 4),
                           "mean_cosine_after": round(mean_pairwise_cosine(out[phase]), 4)}
    return ids, per_phase, out, geometry, len(todo)


def run(ctx: StageContext) -> dict:
    """Stage entry point (see ``interestrec.stages``)."""
    import pyarrow as pa

    from interestrec.data import load_ingest
    from interestrec.encode.encoder import TextEncoder

    cfg = ctx.config.encode
    if cfg.user_mode not in USER_MODES:
        raise StageError(f"encode.user_mode must be one of {USER_MODES}, got '{cfg.user_mode}'")
    out = ctx.stage_dir("encode")
    art = load_ingest(ctx.stage_dir("ingest"))
    t0 = time.perf_counter()
    known = adapt_vectors(ctx, cfg)
    ids, phase_texts, phase_vecs, geometry, n_encoded = encode_phase_items(art.items, art.events, cfg, known)
    item_s = time.perf_counter() - t0
    n_reused = len(set().union(*phase_texts.values()) & known.keys())
    texts, item_vecs = phase_texts["serve"], phase_vecs["serve"]
    dim = int(item_vecs.shape[1])
    for phase, name in PHASE_FILES.items():
        artifacts.write_parquet(artifacts.join(out, name), pa.table({
            "item_id": ids, "vector": artifacts.vectors_to_arrow(phase_vecs[phase])}))
    ctx.log(f"encode: {len(ids)} items × {len(PHASE_FILES)} phases, {n_encoded} distinct texts in {item_s:.1f}s "
            f"({n_encoded / item_s:.0f} texts/s)" + (f"; {n_reused} texts' vectors from adapt" if n_reused else ""))

    ev_all, unknown = known_events(art.events, ids)
    train = ev_all[ev_all.split == "train"]
    all_users = np.unique(art.events["user_id"].to_numpy())

    t1 = time.perf_counter()
    users, pool_vec, n_ev, interests = train_user_vectors(train, ids, phase_vecs["valid"], cfg)
    pool_windows = window_user_vectors(art.events, ids, item_vecs, art.windows, cfg.lookback_days, cfg.half_life_days)
    pool_s = time.perf_counter() - t1
    modes = {"pool": {"users": int(len(users)), "window_rows": int(pool_windows.num_rows), "seconds": round(pool_s, 3),
                      "users_per_s": round(len(users) / max(pool_s, 1e-9), 1)}}
    ctx.log(f"encode: pool mode {len(users)} users + {pool_windows.num_rows} window rows in {pool_s:.1f}s")

    vec, windows, empty = pool_vec, pool_windows, 0
    if cfg.user_mode == "text" or cfg.also_text:
        tok = TextEncoder(cfg.model, device="cpu", max_length=cfg.max_tokens)
        t2 = time.perf_counter()
        rows = text_user_vectors([(-1, train)], phase_texts["valid"], tok, cfg)
        win_groups = window_events(ev_all, art.windows, cfg.lookback_days) if cfg.user_mode == "text" else []
        if win_groups:
            rows = pa.concat_tables([rows, text_user_vectors(win_groups, texts, tok, cfg)])
        text_s = time.perf_counter() - t2
        is_train = rows["window"].to_numpy() == -1
        tusers, kept = rows["user_id"].to_numpy()[is_train], rows["kept"].to_numpy()[is_train]
        text_vec = artifacts.arrow_to_vectors(rows["vector"])[is_train]
        if not np.array_equal(tusers, users):
            raise StageError("encode: text and pool modes disagree on the set of users (internal error)")
        empty = int((kept == 0).sum())
        modes["text"] = {"users": int(len(tusers)), "texts": rows.num_rows, "seconds": round(text_s, 3),
                         "users_per_s": round(len(tusers) / max(text_s, 1e-9), 1),
                         "texts_per_s": round(rows.num_rows / max(text_s, 1e-9), 1), "empty_histories": empty,
                         "empty_window_histories": int((rows["kept"].to_numpy()[~is_train] == 0).sum()),
                         "mean_entries_kept": round(float(kept.mean()), 1) if len(kept) else 0.0}
        ctx.log(f"encode: text mode {rows.num_rows} histories ({len(tusers)} users) in {text_s:.1f}s, "
                f"{empty} empty")
        if cfg.user_mode == "text":
            vec = text_vec
            win = rows.filter(pa.compute.and_(pa.compute.not_equal(rows["window"], -1),
                                              pa.compute.greater(rows["kept"], 0)))
            windows = win.select(["user_id", "window", "vector", "n_events"])
        else:
            artifacts.write_parquet(artifacts.join(out, "users_text.parquet"),
                                    pa.table({"user_id": users, "vector": artifacts.vectors_to_arrow(text_vec)}))
    keep = np.linalg.norm(vec, axis=1) > 0  # an empty history has no vector (counted above), never NaN
    train_rows = pa.table({"user_id": pa.array(users[keep], pa.int64()),
                           "window": pa.array(np.full(int(keep.sum()), -1), pa.int32()),
                           "vector": artifacts.vectors_to_arrow(vec[keep]),
                           "n_events": pa.array(n_ev[keep], pa.int32()),
                           "interests": pa.array([i for i, k in zip(interests, keep) if k], interest_type())})
    win_rows = windows.append_column("interests", pa.nulls(windows.num_rows, interest_type()))
    artifacts.write_parquet(artifacts.join(out, "users.parquet"), pa.concat_tables([train_rows, win_rows]))
    n_int = [len(i) for i in interests]
    used = modes[cfg.user_mode]
    return {
        "model": cfg.model or "sentence-transformers/all-MiniLM-L6-v2 (packaged)",
        "dim": dim,
        "items": int(len(ids)),
        "texts_per_s": round(n_encoded / max(item_s, 1e-9), 1),
        "item_texts_encoded": n_encoded,
        "item_texts_reused_from_adapt": n_reused,
        "item_texts_changed": {p: int(sum(a != b for a, b in zip(phase_texts[p], texts))) for p in ("valid", "test")},
        "geometry": geometry,
        "user_mode": cfg.user_mode,
        "users": int(keep.sum()),
        "users_per_s": used["users_per_s"],
        "users_without_train_events": int(len(np.setdiff1d(all_users, users))),
        "empty_histories": empty,
        "events_unknown_item": unknown,
        "window_rows": int(windows.num_rows),
        "modes": modes,
        "interests_per_user": {"mean": round(float(np.mean(n_int)), 2) if n_int else 0.0, "max": max(n_int, default=0)},
        "actors": cfg.num_actors,
        "config_hash": artifacts.hash_config(cfg),
    }
