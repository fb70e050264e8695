"""The ``encode`` stage: item vectors with the language model on Ray Data, then user vectors.

Users are encoded two ways (``encode.user_mode`` picks the one stored as ``vector``):
``pool`` — recency-decayed mean of the user's item vectors; ``text`` — the language model over the
rendered history text. ``window = -1`` rows use the user's *train* events only (the evaluation never
sees its held-out items); per-window rows use the ``lookback_days`` before each window's end.
With ``also_text`` the train-history texts are encoded in pool mode too (``users_text.parquet``) so
both modes are measured and comparable.

Item vectors are written per phase (``encode.phases``): ``items_valid.parquet`` and
``items_test.parquet`` from item texts whose event-derived parts (tags) come only from the phase's
training events, ``items.parquet`` from every event (serving); each is blended with the item's reviews
among the same events (``encode.reviews``). The ``window = -1`` user rows describe train histories and
use the ``valid`` phase's items; per-window rows use the serving ones. A text-mode history entry shows
the user's own review of the item (``encode.review_history_words``).
"""

from __future__ import annotations

import time

import numpy as np

from interestrec import artifacts, layout
from interestrec.encode.config import EncodeConfig
from interestrec.encode.items import encode_phase_items
from interestrec.encode.phases import PHASE_FILES
from interestrec.encode.reviews import read_text_events, review_events
from interestrec.encode.text import SEP, budget_histories, event_text, item_text
from interestrec.encode.users import interest_type, known_events, pool_rows
from interestrec.ids import lookup
from interestrec.stages import StageContext, StageError

USER_MODES = ("pool", "text")


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


def history_texts(ev, texts: list[str], encoder, max_tokens: int,
                  review_words: int = 0) -> tuple[np.ndarray, list[str], np.ndarray]:
    """Per-user history texts, newest first, oldest entries dropped to fit ``max_tokens``.

    Args:
        ev: events from :func:`known_events`. texts: item texts aligned with ``iidx``.
        encoder: a :class:`~interestrec.encode.encoder.TextEncoder` (only its tokenizer is used).
        review_words: words of the user's own review shown in an entry (``event_text``).

    Returns:
        sorted user ids, their texts, and the entries kept per user (0 = nothing fits: an empty history).
    """
    ev = ev.sort_values(["user_id", "timestamp", "item_id"], ascending=[True, False, False], kind="stable")
    values = ev.value.to_numpy(dtype=np.float64, na_value=np.nan)
    entries = [event_text(texts[i], e, v, t, review_words) for i, e, v, t in
               zip(ev.iidx.tolist(), ev.event.tolist(), values.tolist(), ev.text.tolist())]
    users, starts = np.unique(ev.user_id.to_numpy(), return_index=True)
    starts = np.append(starts, len(entries))
    toks = encoder.token_counts(entries)
    htexts, kept = budget_histories(starts, entries, toks, int(encoder.token_counts([SEP])[0]), max_tokens)
    return users.astype(np.int64), htexts, kept


def text_user_vectors(groups, texts: list[str], encoder, cfg: EncodeConfig):
    """Language-model user vectors of rendered histories, for several event subsets in one Ray Data pass.

    Args:
        groups: ``(window, events)`` pairs (events from :func:`known_events`); ``window = -1`` = train history.

    Returns:
        a table ``user_id, window, vector, n_events, kept`` with a row per user and group; users whose newest
        entry alone exceeds the budget (``kept = 0``) get a zero vector, never NaN.
    """
    import pyarrow as pa

    from interestrec.encode.ray_encode import encode_texts_timed

    users, wins, htexts, kept, n_ev = [], [], [], [], []
    for window, ev in groups:
        u, ht, k = history_texts(ev, texts, encoder, cfg.max_tokens - 2,  # room for [CLS] and [SEP]
                                 cfg.review_history_words)
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
        vec[ok] = encode_texts_timed(ok, [htexts[i] for i in ok.tolist()], cfg, label="encode: history texts")[1]
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
    path = artifacts.join(ctx.stage_dir("adapt"), layout.ADAPT_ITEMS)
    summary = artifacts.join(ctx.stage_dir("adapt"), layout.SUMMARY)
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


def add_text_mode(pool, events, windows, ids: np.ndarray, phase_texts: dict[str, list[str]], cfg: EncodeConfig,
                  out: str, ctx: StageContext) -> tuple[object, dict, int]:
    """Text-mode user vectors (the language model over rendered histories) next to the pool rows.

    With ``user_mode: text`` they replace the pool vectors (interests stay the pool ones); with
    ``also_text`` they are written to ``users_text.parquet`` for the evaluation to compare.

    Returns:
        ``(users table, the text mode's summary, empty train histories)``.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    from interestrec.encode.encoder import TextEncoder

    tok = TextEncoder(cfg.model, device="cpu", max_length=cfg.max_tokens)
    ev_all, _ = known_events(events, ids)
    train = ev_all[ev_all.split == "train"]
    t = time.perf_counter()
    rows = text_user_vectors([(-1, train)], phase_texts["valid"], tok, cfg)
    if cfg.user_mode == "text":
        groups = window_events(ev_all, windows, cfg.lookback_days)
        if groups:
            rows = pa.concat_tables([rows, text_user_vectors(groups, phase_texts["serve"], tok, cfg)])
    text_s = time.perf_counter() - t
    is_train = rows["window"].to_numpy() == -1
    tusers, kept = rows["user_id"].to_numpy()[is_train], rows["kept"].to_numpy()[is_train]
    text_vec = artifacts.arrow_to_vectors(rows["vector"])[is_train]
    empty = int((kept == 0).sum())
    mode = {"users": int(len(tusers)), "texts": rows.num_rows, "seconds": round(text_s, 3),
            "users_per_s": round(len(tusers) / max(text_s, 1e-9), 1),
            "texts_per_s": round(rows.num_rows / max(text_s, 1e-9), 1), "empty_histories": empty,
            "empty_window_histories": int((rows["kept"].to_numpy()[~is_train] == 0).sum()),
            "mean_entries_kept": round(float(kept.mean()), 1) if len(kept) else 0.0}
    ctx.log(f"encode: text mode {rows.num_rows} histories ({len(tusers)} users) in {text_s:.1f}s, {empty} empty")
    if cfg.user_mode != "text":
        artifacts.write_parquet(artifacts.join(out, layout.ENCODE_USERS_TEXT),
                                pa.table({"user_id": tusers, "vector": artifacts.vectors_to_arrow(text_vec)}))
        return pool, mode, empty
    pool_train = pool.filter(pc.equal(pool["window"], -1))
    pos = lookup(tusers, pool_train["user_id"].to_numpy())
    if (pos < 0).any():
        raise StageError("encode: text and pool modes disagree on the set of users (internal error)")
    vec = text_vec[pos]
    keep = np.linalg.norm(vec, axis=1) > 0  # an empty history has no vector (counted above), never NaN
    train_rows = pool_train.set_column(pool_train.schema.get_field_index("vector"), "vector",
                                       artifacts.vectors_to_arrow(vec)).filter(pa.array(keep))
    win = rows.filter(pc.and_(pc.not_equal(rows["window"], -1), pc.greater(rows["kept"], 0)))
    win = win.select(["user_id", "window", "vector", "n_events"])
    win = win.append_column("interests", pa.nulls(win.num_rows, interest_type()))
    return pa.concat_tables([train_rows, win]), mode, empty


def run(ctx: StageContext) -> dict:
    """Stage entry point (see ``interestrec.stages``)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from interestrec.encode.ray_pool import pool_users

    cfg = ctx.config.encode
    if cfg.user_mode not in USER_MODES:
        raise StageError(f"encode.user_mode must be one of {USER_MODES}, got '{cfg.user_mode}'")
    out, ingest = ctx.stage_dir("encode"), ctx.stage_dir("ingest")
    events_path = artifacts.join(ingest, layout.INGEST_EVENTS)
    items = artifacts.read_parquet(artifacts.join(ingest, layout.INGEST_ITEMS))
    windows = artifacts.read_parquet(artifacts.join(ingest, layout.INGEST_WINDOWS))
    # text modes render whole histories in the driver; pool mode never loads the log here (text events only)
    in_driver = cfg.user_mode == "text" or cfg.also_text
    with_reviews = cfg.review_weight > 0
    if in_driver:
        events = artifacts.read_parquet(events_path)
        reviews = review_events(events) if with_reviews else None
    else:
        events, reviews = read_text_events(events_path, cfg.max_reviews_per_item, reviews=with_reviews)
    t0 = time.perf_counter()
    known = adapt_vectors(ctx, cfg)
    try:  # a bad catalogue (duplicate or no items) is the ingest output's fault: named, no traceback
        ids, phase_texts, phase_vecs, geometry, item_tp, review_sum = encode_phase_items(items, events, cfg, known,
                                                                                         reviews)
    except ValueError as e:
        raise StageError(f"encode: {e}") from None
    item_s, n_encoded = item_tp["seconds"], item_tp["count"]
    n_reused = len(set().union(*phase_texts.values()) & known.keys())
    for phase, name in PHASE_FILES.items():
        artifacts.write_parquet(artifacts.join(out, name), pa.table({
            "item_id": ids, "vector": artifacts.vectors_to_arrow(phase_vecs[phase])}))
    ctx.log(f"encode: {len(ids)} items × {len(PHASE_FILES)} phases, {n_encoded} distinct texts in {item_s:.1f}s "
            f"({item_tp['texts_per_s']:.0f} texts/s, {item_tp['tokens_per_s']:.0f} tokens/s)"
            + (f"; {n_reused} texts' vectors from adapt" if n_reused else "")
            + f"; all items in {time.perf_counter() - t0:.1f}s")
    rt = review_sum["texts"]
    if rt["count"]:
        ctx.log(f"encode: {rt['count']} distinct review texts ({rt['tokens']} tokens) in {rt['seconds']:.1f}s: "
                f"{rt['texts_per_s']:.0f} texts/s, {rt['tokens_per_s']:.0f} tokens/s")

    users_path = artifacts.join(out, layout.ENCODE_USERS)
    t1 = time.perf_counter()
    if in_driver:
        table, counts = pool_rows(events, ids, phase_vecs["valid"], phase_vecs["serve"], windows, cfg)
    else:
        counts = pool_users(events_path, users_path, ids, phase_vecs["valid"], phase_vecs["serve"], windows, cfg)
    pool_s = time.perf_counter() - t1
    modes = {"pool": {"users": counts.users, "window_rows": counts.window_rows, "seconds": round(pool_s, 3),
                      "users_per_s": round(counts.users / max(pool_s, 1e-9), 1)}}
    ctx.log(f"encode: pool mode {counts.users} users + {counts.window_rows} window rows in {pool_s:.1f}s"
            + ("" if in_driver else f" ({len(artifacts.parquet_files(users_path))} parts)"))
    empty, n_users, n_windows = 0, counts.users, counts.window_rows
    if in_driver:
        table, modes["text"], empty = add_text_mode(table, events, windows, ids, phase_texts, cfg, out, ctx)
        is_train = pc.equal(table["window"], -1).to_numpy(zero_copy_only=False)
        n_users, n_windows = int(is_train.sum()), int((~is_train).sum())
        artifacts.remove(users_path)
        artifacts.write_parquet(users_path, table)
    return {
        "model": cfg.model or "sentence-transformers/all-MiniLM-L6-v2 (packaged)",
        "dim": int(phase_vecs["serve"].shape[1]),
        "items": int(len(ids)),
        "item_description_words": cfg.item_description_words,  # how item texts were written (POST /items follows)
        "texts_per_s": item_tp["texts_per_s"],
        "item_texts_encoded": n_encoded,
        "item_texts_reused_from_adapt": n_reused,
        "item_texts_changed": {p: int(sum(a != b for a, b in zip(phase_texts[p], phase_texts["serve"])))
                               for p in ("valid", "test")},
        "reviews": {k: v for k, v in review_sum.items() if k != "texts"},
        "throughput": {"item_texts": item_tp, "review_texts": rt},
        "geometry": geometry,
        "user_mode": cfg.user_mode,
        "users": n_users,
        "users_per_s": modes[cfg.user_mode]["users_per_s"],
        "users_without_train_events": counts.users_without_train_events,
        "empty_histories": empty,
        "events_unknown_item": counts.events_unknown_item,
        "window_rows": n_windows,
        "modes": modes,
        "interests_per_user": {"mean": round(counts.interests / max(counts.users, 1), 2),
                               "max": counts.max_interests},
        "pool_in_driver": in_driver,
        "actors": cfg.num_actors,
        "config_hash": artifacts.hash_config(cfg),
    }
