"""Review texts in item vectors and text-mode histories: leak-free per phase, each text encoded once.

Pure parts (selection, pooling, blending, reading part by part, history entries) against plain
references; then the encode stage on a tiny ingest-format fixture with review texts (real model, Ray).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pyarrow as pa
import pytest

from fixtures.events import events_table as ingest_events
from interestrec import artifacts
from interestrec.config import PipelineConfig
from interestrec.encode.config import EncodeConfig
from interestrec.encode.phases import PHASE_FILES, phase_splits
from interestrec.encode.reviews import (
    Reviews,
    blend,
    blend_reference,
    pool_reviews,
    preselect,
    read_text_events,
    review_events,
    select_reviews,
    select_reviews_reference,
)
from interestrec.encode.text import SEP, event_text, review_cut
from interestrec.stages import StageContext

DAY = 86400
TOY = "Toy Story (1995). Genres: Animation, Children. Tags: cozy."
HEAT = "Heat (1995). Genres: Action, Crime. Tags: heist."
# user, item, day, event, value, text, split, window. Reviews: item 1 has three train reviews (the cap of 2
# keeps days 70 and 60), item 3 one valid-period review, item 4 one test-period review, items 2 and 6 share a
# text; tag, search and blank texts are not reviews.
ROWS = [
    (1, 1, 10, "rate", 5.0, "A warm, funny story about toys.", "train", 0),
    (1, 2, 20, "view", None, None, "train", 0),
    (1, 1, 21, "tag", None, "cozy", "train", 0),
    (1, 3, 130, "rate", 4.0, "Terrifying and claustrophobic in space.", "valid", 1),
    (1, 4, 140, "rate", 2.0, "Spoiler: the ending reveals everything.", "test", 1),
    (2, 2, 30, "rate", 4.0, "Great heist.", "train", 0),
    (2, 5, 40, "rate", 5.0, "A timeless romance.", "train", 0),
    (2, 6, 50, "purchase", None, "Great heist.", "train", 0),
    (2, 1, 60, "rate", 3.0, "Fun for kids.", "train", 0),
    (2, 3, 150, "rate", 5.0, None, "valid", 1),
    (2, 4, 160, "rate", 4.0, None, "test", 1),
    (3, 1, 70, "rate", 4.0, "  Pixar at its best. ", "train", 0),
    (3, 5, 80, "search", None, "old movies", "train", 0),
    (3, 2, 85, "tag", None, "heist", "train", 0),
    (3, 6, 170, "rate", 4.0, None, "valid", 1),
    (3, 2, 180, "rate", 3.0, "   ", "test", 1),
]
# what each phase pools, item by item, newest first (written out from ROWS by hand)
EXPECTED = {
    "valid": {1: ["Pixar at its best.", "Fun for kids."], 2: ["Great heist."], 5: ["A timeless romance."],
              6: ["Great heist."]},
    "test": {1: ["Pixar at its best.", "Fun for kids."], 2: ["Great heist."], 3: ["Terrifying and claustrophobic in space."],
             5: ["A timeless romance."], 6: ["Great heist."]},
    "serve": {1: ["Pixar at its best.", "Fun for kids."], 2: ["Great heist."], 3: ["Terrifying and claustrophobic in space."],
              4: ["Spoiler: the ending reveals everything."], 5: ["A timeless romance."], 6: ["Great heist."]},
}


def events_table(rows=ROWS, reviews: bool = True) -> pa.Table:
    """``rows`` in the ingest events schema; ``reviews=False`` blanks every review text (tags, searches stay)."""
    return ingest_events([(u, i, d * DAY, e, v, x if reviews or e in ("tag", "search") else None, s, w)
                         for u, i, d, e, v, x, s, w in rows])


def write_ingest(out, reviews: bool = True) -> None:
    """items / events (a two-part directory dataset, user-disjoint) / windows in the ingest layout."""
    d = artifacts.join(str(out), "ingest")
    items = pa.table({
        "item_id": pa.array([1, 2, 3, 4, 5, 6], pa.int64()),
        "title": ["Toy Story", "Heat", "Alien", "Finding Nemo", "Casablanca", "Up"],
        "year": pa.array([1995, 1995, 1979, 2003, 1942, 2009], pa.int32()),
        "genres": [["Animation", "Children"], ["Action", "Crime"], ["Horror", "Sci-Fi"], ["Animation"], ["Drama"],
                   ["Animation"]],
        "tags": [["pixar"], [], [], [], [], []],
    })
    events = events_table(reviews=reviews)
    ev_dir = artifacts.join(d, "events.parquet")
    artifacts.makedirs(ev_dir)
    user = events["user_id"].to_numpy()
    for n, keep in enumerate((user == 1, user != 1)):
        artifacts.write_parquet(artifacts.join(ev_dir, f"part-{n:05d}.parquet"), events.filter(pa.array(keep)))
    artifacts.write_manifest(ev_dir, ["part-00000.parquet", "part-00001.parquet"], events.num_rows)
    windows = pa.table({"window": pa.array([0, 1], pa.int32()), "start": pa.array([0, 100 * DAY], pa.int64()),
                        "end": pa.array([100 * DAY, 200 * DAY], pa.int64()), "events": pa.array([9, 7], pa.int64())})
    artifacts.write_parquet(artifacts.join(d, "items.parquet"), items)
    artifacts.write_parquet(artifacts.join(d, "windows.parquet"), windows)


def random_reviews(rng, n: int) -> Reviews:
    """Reviews with many ties (few items, users, days and texts) to exercise the tie-breaks."""
    return Reviews(rng.integers(0, 6, n).astype(np.int64), rng.integers(0, 4, n).astype(np.int64),
                   rng.integers(0, 5, n).astype(np.int64) * DAY, rng.choice(np.array(["train", "valid", "test"], object), n),
                   rng.choice(np.array(["a", "b", "c", "d"], object), n))


def test_review_events_are_non_empty_texts_of_interactions():
    rev = review_events(events_table())
    assert sorted(rev.text.tolist()) == sorted([
        "A warm, funny story about toys.", "Terrifying and claustrophobic in space.",
        "Spoiler: the ending reveals everything.", "Great heist.", "A timeless romance.", "Great heist.",
        "Fun for kids.", "Pixar at its best."])  # stripped; tags, the search and the blank text left out
    assert len(review_events(events_table(reviews=False))) == 0 and len(review_events(None)) == 0


def test_selection_equals_the_per_item_reference():
    rng = np.random.default_rng(0)
    for n in (0, 1, 7, 200):
        rev = random_reviews(rng, n)
        for cap in (1, 2, 5, 1000):
            for phase in PHASE_FILES:
                got = select_reviews(rev, phase_splits(phase), cap)
                np.testing.assert_array_equal(got, select_reviews_reference(rev, phase_splits(phase), cap))
            # preselecting part by part then selecting gives what selecting from the whole log gives
            parts = np.array_split(rng.permutation(n), 3)
            pre = Reviews.concat([preselect(rev.take(p), cap) for p in parts])
            for phase in PHASE_FILES:
                a, b = rev.take(select_reviews(rev, phase_splits(phase), cap)), pre.take(select_reviews(pre, phase_splits(phase), cap))
                assert list(zip(a.item.tolist(), a.timestamp.tolist(), a.user.tolist(), a.text.tolist())) == \
                    list(zip(b.item.tolist(), b.timestamp.tolist(), b.user.tolist(), b.text.tolist()))
    rev = review_events(events_table())
    for phase, want in EXPECTED.items():
        got = rev.take(select_reviews(rev, phase_splits(phase), 2))
        by_item: dict[int, list[str]] = {}
        for i, t in zip(got.item.tolist(), got.text.tolist()):
            by_item.setdefault(i, []).append(t)
        assert by_item == want, phase


def test_read_text_events_part_by_part(tmp_path):
    write_ingest(tmp_path)
    path = artifacts.join(str(tmp_path), "ingest", "events.parquet")
    tags, rev = read_text_events(path, cap=2)
    assert sorted(tags["text"].to_pylist()) == ["cozy", "heist"] and set(tags["event"].to_pylist()) == {"tag"}
    whole = review_events(events_table())
    for phase in PHASE_FILES:  # what the parts kept selects what the whole log selects
        a, b = whole.take(select_reviews(whole, phase_splits(phase), 2)), rev.take(select_reviews(rev, phase_splits(phase), 2))
        assert a.text.tolist() == b.text.tolist() and a.item.tolist() == b.item.tolist()
    # each part keeps what some phase may pool of it: user 1's part has item 1's oldest review (the others'
    # part has its two newer ones), the union of parts then drops it
    assert len(rev) == 8 and len(preselect(rev, 2)) == 7
    assert len(read_text_events(path, cap=2, reviews=False)[1]) == 0


def test_blend_equals_the_per_item_reference():
    rng = np.random.default_rng(1)
    n, d, u = 9, 16, 5
    cat = rng.standard_normal((n, d)).astype(np.float32)
    cat /= np.linalg.norm(cat, axis=1, keepdims=True)
    text_vecs = rng.standard_normal((u, d)).astype(np.float32)
    item_pos = np.array([0, 0, 0, 2, 5, 5, 8], np.int64)
    text_idx = np.array([1, 3, 1, 0, 4, 2, 2], np.int64)  # item 0 pools text 1 twice
    means, counts = pool_reviews(item_pos, text_idx, text_vecs, n)
    assert counts.tolist() == [3, 0, 1, 0, 0, 2, 0, 0, 1]
    per_item = [[text_vecs[t] for p, t in zip(item_pos, text_idx) if p == i] for i in range(n)]
    for w in (0.0, 0.3, 0.5, 1.0):
        got = blend(cat, means, counts, w)
        np.testing.assert_allclose(got, blend_reference(cat, per_item, w), atol=1e-6)
        assert got.dtype == np.float32 and np.array_equal(got[counts == 0], cat[counts == 0])  # untouched bytes
        np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-6)


def test_history_entries_show_a_cut_of_the_users_review():
    assert event_text("Heat (1995).", "rate", 4.0, "Great  heist.\nLoved it", 32) == \
        "rated 4/5, wrote 'Great heist. Loved it': Heat (1995)."
    assert event_text("Heat (1995).", "purchase", None, "one two three four", 2) == "bought, wrote 'one two …': Heat (1995)."
    assert event_text("Heat (1995).", "rate", 4.0, "Great heist.", 0) == "rated 4/5: Heat (1995)."
    assert event_text("Heat (1995).", "view", None, None, 32) == "viewed: Heat (1995)."
    assert event_text("Heat (1995).", "tag", None, "heist", 32) == "tagged 'heist': Heat (1995)."
    assert review_cut(float("nan"), 5) == "" and review_cut("  ", 5) == ""


@pytest.mark.parametrize("field,value,match", [
    ("review_weight", 1.5, r"encode\.review_weight must be ≤ 1"),
    ("review_weight", -0.1, r"encode\.review_weight must be ≥ 0"),
    ("max_reviews_per_item", 0, r"encode\.max_reviews_per_item must be ≥ 1"),
    ("review_max_tokens", 4, r"encode\.review_max_tokens must be ≥ 8"),
    ("review_history_words", "all", r"encode\.review_history_words must be an int"),
])
def test_review_config_is_validated(field, value, match):
    from interestrec.configcheck import ConfigError

    with pytest.raises(ConfigError, match=match):
        EncodeConfig(**{field: value})


def run_stage(out, reviews: bool, **kw) -> dict:
    from interestrec.encode.stage import run

    write_ingest(out, reviews)
    cfg = EncodeConfig(batch_size=4, num_cpus=1, device="cpu", max_reviews_per_item=2, **kw)
    return run(StageContext(out=str(out), config=dataclasses.replace(PipelineConfig(), encode=cfg)))


@pytest.fixture(scope="module")
def stage_runs(ray_local, tmp_path_factory) -> dict:
    """Three stage runs: the text-only path (``review_weight`` 0) and the default on the log without review
    texts, the default on the log with them (``also_text``, every text sent to the encoder recorded)."""
    from interestrec.encode import ray_encode

    root = tmp_path_factory.mktemp("encode-reviews")
    sent: dict[str, list[str]] = {}
    real = ray_encode.encode_texts_timed

    def recording(ids, texts, cfg, label="encode: texts", **kw):
        sent.setdefault(label, []).extend(texts)
        return real(ids, texts, cfg, label, **kw)

    out = {"plain": run_stage(root / "plain", reviews=False, review_weight=0.0, also_text=False),
           "tags_only": run_stage(root / "tags_only", reviews=False, also_text=False)}
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ray_encode, "encode_texts_timed", recording)
        out["reviews"] = run_stage(root / "reviews", reviews=True, also_text=True)
    return {"root": root, "summary": out, "sent": sent}


def item_vectors(out, phase: str) -> np.ndarray:
    t = artifacts.read_parquet(artifacts.join(str(out), "encode", PHASE_FILES[phase]))
    assert t["item_id"].to_pylist() == [1, 2, 3, 4, 5, 6]
    return artifacts.arrow_to_vectors(t["vector"])


def test_a_log_without_review_texts_gives_the_text_only_bytes(stage_runs):
    root = stage_runs["root"]
    for name in PHASE_FILES.values():
        a, b = (artifacts.read_bytes(artifacts.join(str(root / run), "encode", name)) for run in ("plain", "tags_only"))
        assert a == b, name
    s = stage_runs["summary"]["tags_only"]
    assert s["throughput"]["review_texts"]["count"] == 0 and s["reviews"]["pooled"] == {"valid": 0, "test": 0, "serve": 0}


def test_each_review_text_is_encoded_once_and_counted(stage_runs):
    # every text some phase pools, once (the shared "Great heist." too); item 1's oldest train review is beyond
    # the cap in every phase, so it is never encoded; tags, the search and the blank text are not reviews
    sent = stage_runs["sent"]["encode: review texts"]
    assert sorted(sent) == sorted({t for p in EXPECTED.values() for ts in p.values() for t in ts})
    s = stage_runs["summary"]["reviews"]
    tp = s["throughput"]["review_texts"]
    assert tp["count"] == 6 and tp["tokens"] > 6 * 3 and tp["texts_per_s"] > 0 and tp["tokens_per_s"] > tp["texts_per_s"]
    assert s["throughput"]["item_texts"]["count"] == s["item_texts_encoded"] == 6
    assert s["reviews"]["items_with_reviews"] == {"valid": 4, "test": 5, "serve": 6}
    assert s["reviews"]["pooled"] == {"valid": 5, "test": 6, "serve": 7}


def test_a_review_reaches_only_the_phases_that_learn_from_its_period(stage_runs):
    """Leak test: the test-period review (item 4) changes no valid or test vector, the valid-period one
    (item 3) the test phase but not the valid one; serving sees every review. Item texts never change."""
    root = stage_runs["root"]
    assert stage_runs["summary"]["reviews"]["item_texts_changed"] == {"valid": 0, "test": 0}
    for phase, want in EXPECTED.items():
        base, got = item_vectors(root / "plain", phase), item_vectors(root / "reviews", phase)
        changed = {i + 1 for i in np.flatnonzero(np.abs(got - base).max(axis=1) > 0)}
        assert changed == set(want), phase
    assert 3 not in EXPECTED["valid"] and 4 not in EXPECTED["test"] and {3, 4} <= set(EXPECTED["serve"])


@pytest.fixture(scope="module")
def encoder():
    from interestrec.encode.encoder import TextEncoder

    return TextEncoder(device="cpu")


def test_blended_vectors_equal_the_per_item_reference(stage_runs, encoder):
    texts = sorted({t for p in EXPECTED.values() for ts in p.values() for t in ts})
    assert max(encoder.token_counts(texts)) < 126  # within encode.review_max_tokens: nothing truncated
    vec = dict(zip(texts, encoder.encode(texts)))
    root = stage_runs["root"]
    for phase, want in EXPECTED.items():
        base = item_vectors(root / "plain", phase)
        per_item = [[vec[t] for t in want.get(i, [])] for i in range(1, 7)]
        np.testing.assert_allclose(item_vectors(root / "reviews", phase), blend_reference(base, per_item, 0.5), atol=2e-5)


def test_a_train_history_shows_the_users_own_train_review_only(stage_runs, encoder):
    # user 1's train events, newest first; its test-period review of item 4 is not there
    history = SEP.join([f"tagged 'cozy': {TOY}", f"viewed: {HEAT}",
                        f"rated 5/5, wrote 'A warm, funny story about toys.': {TOY}"])
    users = artifacts.read_parquet(artifacts.join(str(stage_runs["root"] / "reviews"), "encode", "users_text.parquet"))
    assert users["user_id"].to_pylist() == [1, 2, 3]
    np.testing.assert_allclose(artifacts.arrow_to_vectors(users["vector"])[0], encoder.encode([history])[0], atol=1e-5)
