"""Text rendering, the language-model encoder, the Ray Data pipeline and multi-interest users."""

import numpy as np
import pytest

from interestrec.encode.config import EncodeConfig
from interestrec.encode.interests import user_interests
from interestrec.encode.text import SEP, budget_histories, event_text, history_text, item_text

TEXTS = [
    "Toy Story (1995). Genres: Adventure, Animation, Children. Tags: pixar, fun.",
    "Heat (1995). Genres: Action, Crime, Thriller.",
    "rated 4.5/5: Alien (1979). Genres: Horror, Sci-Fi. Tags: space, ridley scott, creepy, atmospheric.",
    "a",
    "The Lord of the Rings: The Fellowship of the Ring (2001). Genres: Adventure, Fantasy. Tags: tolkien",
    "Finding Nemo (2003). Genres: Adventure, Animation, Children, Comedy.",
    "searched 'gangster movies from the seventies'",
] * 5


@pytest.fixture(scope="module")
def encoder():
    from interestrec.encode.encoder import TextEncoder

    return TextEncoder(device="cpu", num_threads=1)


def test_item_and_event_text():
    assert item_text("Heat", 1995, ["Action", "Crime"], ["heist", "la", "a", "b", "c", "d"], max_tags=2) == \
        "Heat (1995). Genres: Action, Crime. Tags: heist, la."
    assert item_text("Untitled", None, [], []) == "Untitled."
    assert event_text("Heat (1995).", "rate", 4.5) == "rated 4.5/5: Heat (1995)."
    assert event_text("Heat (1995).", "rate", float("nan")) == "rated: Heat (1995)."
    assert event_text("Heat (1995).", "tag", None, "heist") == "tagged 'heist': Heat (1995)."
    assert event_text("x", "search", None, "space") == "searched 'space'"
    with pytest.raises(ValueError, match="unknown event kind 'like'"):
        event_text("x", "like")


def test_truncation_keeps_newest_whole_entries(encoder):
    entries = [f"rated {i}/5: {TEXTS[i % 6]}" for i in range(12)]  # newest first
    counts = [encoder.count_tokens(e) for e in entries]
    budget = counts[0] + counts[1] + counts[2] + 2 * encoder.count_tokens(SEP) + 3  # 3 fit, the 4th does not
    text, kept = history_text(entries, encoder.count_tokens, budget)
    assert kept == 3 and text == SEP.join(entries[:3])
    assert encoder.count_tokens(text) <= budget
    # nothing fits: empty, counted by the caller
    assert history_text(entries, encoder.count_tokens, counts[0] - 1) == ("", 0)


def test_vectorised_budget_equals_reference(encoder):
    rng = np.random.default_rng(0)
    sizes = rng.integers(0, 9, 40)
    entries = [TEXTS[i] for i in rng.integers(0, len(TEXTS), int(sizes.sum()))]
    starts = np.concatenate([[0], np.cumsum(sizes)])
    toks = encoder.token_counts(entries)
    assert toks.tolist() == [encoder.count_tokens(e) for e in entries]
    for budget in (5, 40, 120):
        texts, kept = budget_histories(starts, entries, toks, encoder.count_tokens(SEP), budget)
        for u in range(len(sizes)):
            ref = history_text(entries[starts[u] : starts[u + 1]], encoder.count_tokens, budget)
            assert (texts[u], kept[u]) == ref


def test_encoder_unit_vectors_order_and_determinism(encoder):
    v = encoder.encode(TEXTS, batch_size=4)
    assert v.shape == (len(TEXTS), 384) and v.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(v, encoder.encode(TEXTS, batch_size=4))  # deterministic
    # order restored after the length sort; padding does not change a text's vector
    one = np.stack([encoder.encode([t])[0] for t in TEXTS[:7]])
    np.testing.assert_allclose(v[:7], one, atol=1e-5)
    # meaning: the two animated children's films are closer to each other than to a crime thriller
    assert v[0] @ v[5] > v[0] @ v[1] + 0.1


def _length_batches_reference(lengths, rows, tokens):
    """Greedy, one text at a time: close the pass when the next text would break a limit."""
    out, cur = [], []
    for i, n in enumerate(lengths):
        if cur and (len(cur) == rows or (tokens is not None and (len(cur) + 1) * n > tokens)):
            out.append((cur[0], cur[-1] + 1))
            cur = []
        cur.append(i)
    return out + ([(cur[0], cur[-1] + 1)] if cur else [])


@pytest.mark.parametrize("seed", range(20))
def test_length_batches_equal_the_greedy_reference(seed):
    from interestrec.encode.encoder import length_batches

    rng = np.random.default_rng(seed)
    lengths = np.sort(rng.integers(1, 300, rng.integers(0, 400)))
    for rows, tokens in ((64, None), (1024, 65536), (7, 50), (1, 10), (500, 256)):
        got = length_batches(lengths, rows, tokens)
        assert got == _length_batches_reference(lengths, rows, tokens), (rows, tokens)
        assert [i for lo, hi in got for i in range(lo, hi)] == list(range(len(lengths)))


def test_a_token_budget_changes_the_passes_not_the_vectors(encoder):
    ids = encoder.tokenize(TEXTS)
    np.testing.assert_allclose(encoder.embed_sorted(ids, 64, max_tokens=40), encoder.embed_sorted(ids, 4), atol=1e-5)


def test_encoder_handles_empty_input_and_long_text(encoder):
    assert encoder.encode([]).shape == (0, 384)
    long = " ".join(["word"] * 2000)
    ids = encoder.tokenize([long])[0]
    assert len(ids) == encoder.max_length
    assert np.isfinite(encoder.encode([long])).all()


def test_missing_model_directory_is_named(tmp_path):
    from interestrec.encode.encoder import TextEncoder

    with pytest.raises(ValueError, match="no such model directory"):
        TextEncoder(str(tmp_path / "nope"))


def test_ray_data_pipeline_equals_bare_encoder(ray_local, encoder):
    from interestrec.encode.ray_encode import encode_texts

    cfg = EncodeConfig(batch_size=8, num_actors=1, num_cpus=1, device="cpu")
    ids = np.arange(len(TEXTS), dtype=np.int64)[::-1].copy()
    got_ids, got = encode_texts(ids, TEXTS, cfg)
    assert got_ids.tolist() == ids.tolist()
    np.testing.assert_allclose(got, encoder.encode(TEXTS), atol=1e-5)


def test_interests_medoids_are_history_items():
    rng = np.random.default_rng(1)
    centres = np.eye(8)[:3]
    vecs = np.concatenate([c + 0.05 * rng.standard_normal((6, 8)) for c in centres])
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    ids = np.arange(100, 118)
    w = np.concatenate([np.full(6, 3.0), np.full(6, 2.0), np.full(6, 1.0)])
    out = user_interests(ids, vecs, w, max_interests=4)
    assert 1 <= len(out) <= 4
    assert all(i.medoid_item_id in set(ids.tolist()) for i in out)
    assert sum(i.size for i in out) == len(ids)
    assert abs(sum(i.importance for i in out) - 1.0) < 1e-6
    # three planted groups found, most important (heaviest) first, each vector near its group centre
    assert len(out) == 3 and out[0].medoid_item_id < 106 and out[-1].medoid_item_id >= 112
    assert all(np.max(centres @ i.vector) > 0.95 for i in out)
    capped = user_interests(ids, vecs, w, max_interests=2)
    assert len(capped) == 2 and sum(i.size for i in capped) == len(ids)
    assert len(user_interests(ids, vecs, w, max_interests=4, max_distance=100.0)) == 1
    assert user_interests(ids[:0], vecs[:0], w[:0]) == []
    with pytest.raises(ValueError, match="3 weights"):
        user_interests(ids, vecs, w[:3])


def test_single_interest_medoid_is_the_brute_force_medoid():
    rng = np.random.default_rng(2)
    vecs = rng.standard_normal((9, 5))
    (one,) = user_interests(np.arange(9) + 50, vecs, np.ones(9), max_interests=1)
    cost = [sum(float(np.sum((a - b) ** 2)) for b in vecs) for a in vecs]
    assert one.medoid_item_id == 50 + int(np.argmin(cost)) and one.size == 9 and one.importance == 1.0
