"""The ``encode`` stage: item vectors with the language model on Ray Data, then user vectors.

Users are encoded two ways (``encode.user_mode`` picks the one stored as ``vector``):
``pool`` — recency-decayed mean of the user's item vectors; ``text`` — the language model over the
rendered history text. ``window = -1`` rows use the user's *train* events only (the evaluation never
sees its held-out items), per-window rows the lookback before each window's end.
"""

from __future__ import annotations

import time

import numpy as np

from interestrec import artifacts
from interestrec.data import load_ingest
from interestrec.encode.config import EncodeConfig
from interestrec.encode.interests import user_interests
from interestrec.encode.pooling import decay, event_weights, pool_user_vectors, window_user_vectors
from interestrec.encode.ray_encode import encode_texts
from interestrec.encode.text import event_text, history_text, item_text
from interestrec.stages import StageContext


def item_texts(items) -> tuple[np.ndarray, list[str]]:
    """Item ids and their rendered texts."""
    d = items.to_pydict()
    texts = [item_text(t, y, g, tg) for t, y, g, tg in zip(d["title"], d["year"], d["genres"], d["tags"])]
    return np.asarray(d["item_id"], np.int64), texts


def history_texts(events, texts_by_item: dict[int, str], count_tokens, max_tokens: int) -> tuple[np.ndarray, list[str], int]:
    """Per-user history text (newest first, oldest dropped to fit); returns ids, texts, users with nothing kept."""
    ev = events.select(["user_id", "item_id", "timestamp", "event", "value", "text"]).to_pandas()
    ev = ev.sort_values(["user_id", "timestamp"], ascending=[True, False], kind="stable")
    users, texts, empty = [], [], 0
    for uid, g in ev.groupby("user_id", sort=True):
        entries = [event_text(texts_by_item.get(int(i), str(i)), e, None if np.isnan(v) else float(v), t)
                   for i, e, v, t in zip(g.item_id, g.event, g.value.astype(float), g.text)]
        text, kept = history_text(entries, count_tokens, max_tokens)
        empty += kept == 0
        users.append(uid)
        texts.append(text)
    return np.asarray(users, np.int64), texts, empty


def train_user_vectors(events, item_ids: np.ndarray, item_vecs: np.ndarray, cfg: EncodeConfig):
    """Pooled ``window = -1`` vectors and interests from each user's train events."""
    import pyarrow as pa

    ev = events.filter(pa.compute.equal(events["split"], "train")).to_pandas()
    pos = np.searchsorted(item_ids, ev.item_id.to_numpy())
    users, uidx = np.unique(ev.user_id.to_numpy(), return_inverse=True)
    ts = ev.timestamp.to_numpy()
    last = np.zeros(len(users), np.int64)
    np.maximum.at(last, uidx, ts)
    w = event_weights(ev.event.to_numpy(), ev.value.to_numpy(dtype=np.float64, na_value=np.nan))
    vec, n = pool_user_vectors(uidx, pos, ts, w, item_vecs, len(users), last[uidx], cfg.half_life_days)
    interests = []
    dw = w * decay(ts, last[uidx], cfg.half_life_days)
    order = np.lexsort((ts, uidx))
    bounds = np.searchsorted(uidx[order], np.arange(len(users) + 1))
    for u in range(len(users)):
        sel = order[bounds[u] : bounds[u + 1]]
        its = user_interests(item_ids[pos[sel]], item_vecs[pos[sel]], dw[sel], cfg.max_interests)
        interests.append([{"vector": i.vector.tolist(), "medoid_item_id": i.medoid_item_id, "importance": i.importance,
                           "size": i.size} for i in its])
    return users, vec, n, interests


def run(ctx: StageContext) -> dict:
    """Stage entry point (see ``interestrec.stages``)."""
    import pyarrow as pa

    cfg = ctx.config.encode
    out = ctx.stage_dir("encode")
    art = load_ingest(ctx.stage_dir("ingest"))
    ids, texts = item_texts(art.items)
    order = np.argsort(ids)
    ids, texts = ids[order], [texts[i] for i in order]
    t0 = time.perf_counter()
    ids, item_vecs = encode_texts(ids, texts, cfg)
    item_s = time.perf_counter() - t0
    dim = int(item_vecs.shape[1])
    artifacts.write_parquet(artifacts.join(out, "items.parquet"),
                            pa.table({"item_id": ids, "vector": artifacts.vectors_to_arrow(item_vecs)}))
    ctx.log(f"encode: {len(ids)} items in {item_s:.1f}s ({len(ids) / item_s:.0f} texts/s)")

    # pooled users (window -1 from train events; per-window lookback vectors)
    t1 = time.perf_counter()
    users, uvec, n_ev, interests = train_user_vectors(art.events, ids, item_vecs, cfg)
    windows = window_user_vectors(art.events, ids, item_vecs, art.windows, cfg.lookback_days, cfg.half_life_days)
    pool_s = time.perf_counter() - t1
    all_users = np.unique(art.events["user_id"].to_numpy())
    no_train = int(len(np.setdiff1d(all_users, users)))
    summary_modes = {"pool": {"users": int(len(users)), "seconds": round(pool_s, 2), "users_per_s": round(len(users) / max(pool_s, 1e-9), 1)}}

    text_vec = None
    if cfg.user_mode == "text" or cfg.also_text:
        from interestrec.encode.encoder import TextEncoder

        tok = TextEncoder(cfg.model, device="cpu", max_length=cfg.max_tokens)
        train_events = art.events.filter(pa.compute.equal(art.events["split"], "train"))
        t2 = time.perf_counter()
        tusers, htexts, empty = history_texts(train_events, dict(zip(ids.tolist(), texts)), tok.count_tokens, cfg.max_tokens - 2)
        tusers, text_vec = encode_texts(tusers, htexts, cfg)
        text_s = time.perf_counter() - t2
        assert np.array_equal(tusers, users)
        summary_modes["text"] = {"users": int(len(tusers)), "seconds": round(text_s, 2),
                                 "users_per_s": round(len(tusers) / max(text_s, 1e-9), 1), "empty_histories": int(empty)}
        ctx.log(f"encode: text mode {len(tusers)} users in {text_s:.1f}s")
    stored = text_vec if cfg.user_mode == "text" else uvec
    interest_type = pa.list_(pa.struct([("vector", pa.list_(pa.float32())), ("medoid_item_id", pa.int64()),
                                        ("importance", pa.float32()), ("size", pa.int32())]))
    train_rows = pa.table({"user_id": users, "window": pa.array(np.full(len(users), -1), pa.int32()),
                           "vector": artifacts.vectors_to_arrow(stored), "n_events": pa.array(n_ev, pa.int32()),
                           "interests": pa.array(interests, interest_type)})
    win_rows = windows.append_column("interests", pa.nulls(windows.num_rows, interest_type))
    artifacts.write_parquet(artifacts.join(out, "users.parquet"), pa.concat_tables([train_rows, win_rows]))
    if text_vec is not None and cfg.user_mode != "text":
        artifacts.write_parquet(artifacts.join(out, "users_text.parquet"),
                                pa.table({"user_id": users, "vector": artifacts.vectors_to_arrow(text_vec)}))
    n_int = [len(i) for i in interests]
    return {
        "model": ctx.config.encode.model or "sentence-transformers/all-MiniLM-L6-v2 (packaged)",
        "dim": dim,
        "items": int(len(ids)),
        "texts_per_s": round(len(ids) / max(item_s, 1e-9), 1),
        "user_mode": cfg.user_mode,
        "users": int(len(users)),
        "users_without_train_events": no_train,
        "window_rows": int(windows.num_rows),
        "modes": summary_modes,
        "interests_per_user": {"mean": round(float(np.mean(n_int)), 2) if n_int else 0, "max": max(n_int, default=0)},
        "actors": cfg.num_actors,
        "config_hash": artifacts.hash_config(cfg),
    }
