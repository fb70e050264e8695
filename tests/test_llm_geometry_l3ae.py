"""The LLM inside the collaborative model (pure numpy/torch, no Ray): phase item texts, whitening,
L3AE, the item-level LLM term and SASRec's LLM initialisation."""

from __future__ import annotations

import dataclasses

import numpy as np
import pyarrow as pa
import pytest
import scipy.sparse as sp

from interestrec import artifacts
from interestrec.encode.config import EncodeConfig
from interestrec.encode.geometry import fit_whitening, mean_pairwise_cosine, mean_pairwise_cosine_reference
from interestrec.encode.phases import distinct_texts, item_vectors_path, phase_item_texts
from interestrec.evaluate.base import Interactions
from interestrec.recommend.closed_form import (
    ease_weights,
    ease_weights_direct,
    l3ae_weights,
    l3ae_weights_reference,
    text_item_weights,
)
from interestrec.recommend.itemitem import fit_item_item
from interestrec.recommend.llm_term import item_level_reference, item_level_scores


# ------------------------------------------------------------------------------------------- phase item texts
def _catalog(tags_events: list[tuple[int, str, str]]):
    items = pa.table({"item_id": pa.array([2, 1], pa.int64()), "title": ["Heat", "Toy Story"],
                      "year": pa.array([1995, 1995], pa.int32()), "genres": [["Action"], ["Animation"]],
                      "tags": [["catalog"], ["pixar"]]})
    rows = [(1, 1, "rate", None, "train")] + [(1, i, "tag", t, s) for i, t, s in tags_events]
    u, i, e, x, s = zip(*rows)
    events = pa.table({"user_id": pa.array(u, pa.int64()), "item_id": pa.array(i, pa.int64()), "event": list(e),
                       "text": pa.array(x, pa.string()), "split": list(s)})
    return items, events


def test_phase_texts_use_only_the_phase_training_tags():
    items, events = _catalog([(1, "Cozy", "train"), (1, "spoiler", "test"), (2, "heist", "valid"),
                              (1, "cozy ", "valid")])
    ids, valid = phase_item_texts(items, events, "valid")
    assert ids.tolist() == [1, 2]
    assert valid == ["Toy Story (1995). Genres: Animation. Tags: cozy.", "Heat (1995). Genres: Action."]
    _, test = phase_item_texts(items, events, "test")
    assert test == ["Toy Story (1995). Genres: Animation. Tags: cozy.", "Heat (1995). Genres: Action. Tags: heist."]
    _, serve = phase_item_texts(items, events, "serve")  # counts order the tags (cozy ×2 before spoiler)
    assert serve[0] == "Toy Story (1995). Genres: Animation. Tags: cozy, spoiler."
    # the catalog's aggregated tags are ignored once tag events exist, used as static metadata otherwise
    no_tags = events.filter(pa.compute.equal(events["event"], "rate"))
    assert phase_item_texts(items, no_tags, "valid")[1][0] == "Toy Story (1995). Genres: Animation. Tags: pixar."
    with pytest.raises(ValueError, match="unknown phase"):
        phase_item_texts(items, events, "train")


def test_distinct_texts_encode_shared_texts_once():
    unique, rows = distinct_texts({"valid": ["a", "b", "c"], "test": ["a", "b2", "c"], "serve": ["a", "b2", "c3"]})
    assert unique == ["a", "b", "c", "b2", "c3"]
    for phase, texts in {"valid": ["a", "b", "c"], "test": ["a", "b2", "c"], "serve": ["a", "b2", "c3"]}.items():
        assert [unique[k] for k in rows[phase]] == texts


def test_item_vectors_path_prefers_the_phase_file(tmp_path):
    root = str(tmp_path)
    serve = artifacts.join(root, "encode", "items.parquet")
    assert item_vectors_path(root, "test") == serve  # older outputs: only the serving file
    artifacts.write_parquet(artifacts.join(root, "encode", "items_test.parquet"), pa.table({"item_id": [1]}))
    assert item_vectors_path(root, "test").endswith("items_test.parquet")
    assert item_vectors_path(root, None) == serve and item_vectors_path(root, "valid") == serve


# ------------------------------------------------------------------------------------------------- whitening
def _cone(n: int = 400, d: int = 16, seed: int = 0) -> np.ndarray:
    """Unit vectors in a narrow cone around one direction, with unequal spreads per axis."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d)) * np.linspace(0.05, 0.5, d) + 3.0 * np.eye(d)[0]
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_mean_cosine_closed_form_matches_all_pairs():
    x = _cone(60)
    x[3] = 0.0  # an item without a vector is left out of both
    assert mean_pairwise_cosine(x) == pytest.approx(mean_pairwise_cosine_reference(x), abs=1e-9)
    assert mean_pairwise_cosine(x) > 0.8


def test_whitening_decorrelates_and_opens_the_cone():
    x = _cone()
    w = fit_whitening(x, "whiten", eps=1e-9)
    z = (x.astype(np.float64) - w.mean) @ w.matrix  # before the re-normalisation: identity covariance
    np.testing.assert_allclose(np.cov(z.T), np.eye(x.shape[1]), atol=1e-4)
    y = w.transform(x)
    np.testing.assert_allclose(np.linalg.norm(y, axis=1), 1.0, atol=1e-5)
    assert mean_pairwise_cosine(x) > 0.8 and abs(mean_pairwise_cosine(y)) < 0.05
    c = fit_whitening(x, "center").transform(x)
    assert abs(mean_pairwise_cosine(c)) < 0.05
    # fitted on the catalogue, then applied to anything; an all-zero row stays zero
    x2 = np.vstack([x[:5], np.zeros((1, x.shape[1]), np.float32)])
    y2 = w.transform(x2)
    np.testing.assert_allclose(y2[:5], y[:5], atol=1e-6)
    assert not y2[5].any()


def test_remove_pcs_projects_out_the_top_directions():
    x = _cone()
    w = fit_whitening(x, "remove_pcs", pcs=3)
    xc = x.astype(np.float64) - x.mean(0)
    top = np.linalg.eigh(np.cov(xc.T))[1][:, ::-1][:, :3]
    y = w.transform(x)
    np.testing.assert_allclose(y @ top, 0.0, atol=1e-5)
    np.testing.assert_allclose(fit_whitening(x, "none").transform(x), x)


def test_whitening_options_are_validated():
    with pytest.raises(ValueError, match="encode.whiten"):
        EncodeConfig(whiten="pca")
    with pytest.raises(ValueError, match="whiten_pcs"):
        EncodeConfig(whiten="remove_pcs", whiten_pcs=0)
    with pytest.raises(ValueError, match="whitening mode"):
        fit_whitening(_cone(), "zca")
    with pytest.raises(ValueError, match="remove_pcs needs"):
        fit_whitening(_cone(d=4), "remove_pcs", pcs=4)


# ------------------------------------------------------------------------------------------------------ L3AE
def _xe(users: int, items: int = 25, d: int = 6, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = sp.csr_matrix((rng.random((users, items)) < 0.3).astype(np.float32))
    e = rng.standard_normal((items, d)).astype(np.float32)
    return x, e / np.linalg.norm(e, axis=1, keepdims=True)


@pytest.mark.parametrize("users", [12, 40])  # fewer users than items (Woodbury path) and more (direct)
def test_l3ae_fast_matches_the_column_by_column_reference(users):
    x, e = _xe(users)
    fast = l3ae_weights(x, e, 5.0, 3.0, 0.5)
    ref = l3ae_weights_reference(x, e, 5.0, 3.0, 0.5)
    np.testing.assert_allclose(fast, ref, atol=1e-5)
    assert np.abs(ref).max() > 0.05 and not np.diag(fast).any()
    # the text prior moves the solution: not EASE
    assert np.abs(fast - ease_weights(x, 5.0)).max() > 1e-3


def test_l3ae_with_beta_zero_is_ease():
    x, e = _xe(12)
    np.testing.assert_allclose(l3ae_weights(x, e, 5.0, 0.0), ease_weights(x, 5.0), atol=1e-6)
    np.testing.assert_allclose(l3ae_weights_reference(x, e, 5.0, 0.0), ease_weights_direct(x, 5.0), atol=1e-5)
    # as beta grows the weights approach the text model C, EASE on the item-text Gram matrix
    c = text_item_weights(e, 0.5)
    assert np.abs(c).max() > 0.05
    np.testing.assert_allclose(l3ae_weights(x, e, 1.0, 1e6, 0.5), c, atol=1e-3)


def test_seq_table_can_be_l3ae():
    x, e = _xe(12)
    x = x.tolil()
    x[:, 7] = 0  # an item nobody touched stays out of the table
    x = x.tocsr()
    active = np.flatnonzero(np.asarray(x.sum(0)).ravel() > 0)
    t = fit_item_item(x, lam=5.0, neighbours=1000, item_vecs=e, beta=3.0, lam_text=0.5).toarray()
    np.testing.assert_allclose(t[np.ix_(active, active)], l3ae_weights(x[:, active], e[active], 5.0, 3.0, 0.5), atol=1e-6)
    np.testing.assert_allclose(fit_item_item(x, 5.0, 1000, item_vecs=e, beta=0.0).toarray(), fit_item_item(x, 5.0, 1000).toarray())
    with pytest.raises(ValueError, match="item vectors"):
        fit_item_item(x, 5.0, 10, beta=1.0)


# --------------------------------------------------------------------------------------- item-level LLM term
@pytest.mark.parametrize("mode", ["item_max", "item_sum"])
def test_item_level_llm_scores_match_the_reference(mode):
    rng = np.random.default_rng(2)
    iv = rng.standard_normal((30, 8)).astype(np.float32)
    iv /= np.linalg.norm(iv, axis=1, keepdims=True)
    hist = [rng.integers(0, 30, n) for n in (0, 1, 4, 12)]
    s = item_level_scores(iv, hist, mode, last=5, half_life=2.0, chunk=3)
    assert s.shape == (4, 30) and not s[0].any()
    for b, h in enumerate(hist):
        for j in range(30):
            assert s[b, j] == pytest.approx(item_level_reference(iv, h, j, mode, 5, 2.0), abs=1e-5)
    # only the newest `last` items count
    longer = [np.r_[np.arange(20), hist[3][-5:]]]
    np.testing.assert_allclose(item_level_scores(iv, longer, mode, 5, 2.0), s[3:4], atol=1e-6)


def test_fused_model_llm_term_at_item_level_matches_score_reference():
    from interestrec.recommend.fused import FusedModel, FusedParams, score_reference

    rng = np.random.default_rng(3)
    iv = rng.standard_normal((15, 6)).astype(np.float32)
    iv /= np.linalg.norm(iv, axis=1, keepdims=True)
    hist = [rng.integers(0, 15, 5), rng.integers(0, 15, 2)]
    m = FusedModel(np.arange(15), iv, [iv[:2], iv[3:4]], np.array([0, -1]), rng.random((2, 15)).astype(np.float32),
                   params=FusedParams(weights=(1.0, 0.0, 0.3, 0.0), llm_mode="item_max", llm_last=3, llm_half_life=2.0),
                   history=hist)
    s = m.score(np.array([0, 1]))
    for u in (0, 1):
        for j in (0, 4, 9):
            assert s[u, j] == pytest.approx(score_reference(m, u, j), abs=1e-4)
    old = dataclasses.replace(m, params=dataclasses.replace(m.params, llm_mode="interest"))
    assert np.abs(old.score(np.array([0, 1])) - s).max() > 1e-3
    with pytest.raises(ValueError, match="llm_mode"):
        FusedParams(llm_mode="mean")


# ------------------------------------------------------------------------------------------------ sasrec_llm
def test_sasrec_llm_starts_from_pca_reduced_phase_vectors(tmp_path):
    from sklearn.decomposition import PCA

    from interestrec.evaluate.models.sasrec_llm import SASRecLLM, pca_reduce

    rng = np.random.default_rng(4)
    n, d = 12, 10
    vec = rng.standard_normal((n, d)).astype(np.float32)
    other = rng.standard_normal((n, d)).astype(np.float32)
    root = str(tmp_path)
    # the valid phase reads items_valid.parquet, never the serving file
    artifacts.write_parquet(artifacts.join(root, "encode", "items_valid.parquet"),
                            pa.table({"item_id": np.arange(n), "vector": artifacts.vectors_to_arrow(vec)}))
    artifacts.write_parquet(artifacts.join(root, "encode", "items.parquet"),
                            pa.table({"item_id": np.arange(n), "vector": artifacts.vectors_to_arrow(other)}))
    red = pca_reduce(vec, 4)
    np.testing.assert_allclose(np.abs(red), np.abs(PCA(4).fit_transform(vec.astype(np.float64))), atol=1e-4)
    seqs = [[0, 1, 2, 3], [4, 5, 6], [7, 8, 9, 10, 11]]
    u = np.concatenate([np.full(len(s), k) for k, s in enumerate(seqs)])
    i = np.concatenate(seqs)
    x = sp.csr_matrix((np.ones(len(u), np.float32), (u, i)), shape=(3, n))
    data = Interactions(np.arange(3), np.arange(n), x, u, i, np.arange(len(u)), np.full(3, -1), artifacts=root)
    m = SASRecLLM(dim=4, epochs=0, blocks=1, max_len=8).fit(data)
    w = m.net.item.weight.detach().numpy()[1:]
    np.testing.assert_allclose(w, m.init_embeddings, atol=1e-6)
    scale = w[:, 0] / red[:, 0]
    np.testing.assert_allclose(w, red * scale[0], atol=1e-5)  # one common scale: the PCA vectors themselves
    assert w.std() == pytest.approx(4**-0.5, rel=1e-3)
    trained = SASRecLLM(dim=4, epochs=2, blocks=1, max_len=8).fit(data)
    assert len(trained.losses) == 2 and np.isfinite(trained.losses).all()
