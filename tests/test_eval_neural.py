"""The neural baselines of the evaluation table: LightGCN (PyG, BPR) and SASRec (causal self-attention)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from interestrec.evaluate.base import REGISTRY, Interactions
from interestrec.evaluate.models.lightgcn import (
    LightGCNRecommender,
    bipartite_graph,
    normalized_adjacency,
    sample_negatives,
)
from interestrec.evaluate.models.sasrec import SASRecRecommender, next_item_logits
from interestrec.evaluate.models.sasrec_data import (
    last_window,
    length_batches,
    training_windows,
    user_sequences,
)
from interestrec.evaluate.protocol import evaluate_model


def interactions(seqs: list[list[int]], n_items: int, target: list[int] | None = None) -> Interactions:
    """Index-space data from per-user item sequences (oldest first); time = position in the list."""
    u = np.concatenate([np.full(len(s), k) for k, s in enumerate(seqs)]).astype(np.int64)
    i = np.concatenate([np.asarray(s, dtype=np.int64) for s in seqs])
    t = np.concatenate([np.arange(len(s)) for s in seqs]).astype(np.int64)
    x = sp.csr_matrix((np.ones(len(u), np.float32), (u, i)), shape=(len(seqs), n_items))
    x.sum_duplicates()
    x.data[:] = 1.0
    tgt = np.full(len(seqs), -1) if target is None else np.asarray(target)
    return Interactions(user_ids=np.arange(len(seqs)), item_ids=np.arange(n_items), train=x, seq_user=u,
                        seq_item=i, seq_time=t, target=tgt)


def two_communities(seed: int = 0) -> tuple[Interactions, np.ndarray]:
    """Users 0..19 interact with items 0..11, users 20..39 with items 12..23; each holds one item out."""
    rng = np.random.default_rng(seed)
    seqs, held = [], []
    for u in range(40):
        pool = np.arange(12) + (0 if u < 20 else 12)
        pick = rng.choice(pool, size=7, replace=False)
        seqs.append(list(pick[:6]))
        held.append(int(pick[6]))
    return interactions(seqs, 24, held), np.asarray(held)


def cyclic(n_users: int = 48, n_items: int = 30, length: int = 12, seed: int = 0) -> Interactions:
    """Every user walks the catalogue in order (i → i+1 mod n) from a random start; the next item is known."""
    rng = np.random.default_rng(seed)
    starts = rng.integers(0, n_items, n_users)
    seqs = [[(s + k) % n_items for k in range(length)] for s in starts]
    return interactions(seqs, n_items, [(s + length) % n_items for s in starts])


def test_registered_as_baselines():
    assert REGISTRY["lightgcn"] is LightGCNRecommender and REGISTRY["sasrec"] is SASRecRecommender
    assert LightGCNRecommender.baseline and SASRecRecommender.baseline
    assert len(LightGCNRecommender.grid) >= 2 and len(SASRecRecommender.grid) >= 2


# ----------------------------------------------------------------------------------------------- LightGCN


def test_csr_adjacency_matches_pyg_edge_list_normalisation():
    """The fast path (pre-normalised CSR) propagates exactly like PyG normalising the edge list itself."""
    from torch_geometric.nn.models import LightGCN

    data, _ = two_communities()
    n = data.n_users + data.n_items
    torch.manual_seed(0)
    reference = LightGCN(n, 8, 3)  # LGConv(normalize=True): gcn_norm on every call
    fast = LightGCN(n, 8, 3, normalize=False)
    fast.load_state_dict(reference.state_dict())
    want = reference.get_embedding(bipartite_graph(data.train, data.n_users, data.n_items))
    got = fast.get_embedding(normalized_adjacency(data.train, data.n_users, data.n_items))
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


def test_negative_sampler_never_returns_a_train_item():
    data, _ = two_communities()
    x = data.train.tocsr()
    x.sort_indices()
    u = np.repeat(np.arange(data.n_users), np.diff(x.indptr))
    keys = u * data.n_items + x.indices
    users = np.repeat(np.arange(data.n_users), 300)
    neg = sample_negatives(np.random.default_rng(0), users, keys, data.n_items)
    assert neg.min() >= 0 and neg.max() < data.n_items
    assert not np.asarray(x[users, neg]).any()
    # the sampler reaches every unseen item (uniform over the complement, not a fixed subset)
    assert len(set(neg[users == 0].tolist())) == data.n_items - 6


def test_lightgcn_lowers_bpr_loss_and_separates_communities():
    data, held = two_communities()
    threads = torch.get_num_threads()
    m = LightGCNRecommender(dim=16, layers=2, lr=0.05, epochs=30, batch=64, threads=1).fit(data)
    assert torch.get_num_threads() == threads  # the caller's thread setting is restored
    assert len(m.losses) == 30 and m.losses[-1] < 0.5 * m.losses[0]
    users = np.arange(data.n_users)
    s = m.score(users)
    assert s.shape == (40, 24) and s.dtype == np.float32 and np.isfinite(s).all()
    own = np.where(users[:, None] < 20, np.arange(24)[None] < 12, np.arange(24)[None] >= 12)
    # users score their own community's held-out item above every item of the other community
    assert (s[users, held] > np.where(own, -np.inf, s).max(1)).mean() >= 0.9
    # and on average their own community's items above the other's, every one of them
    assert (np.where(own, s, 0).sum(1) / 12 > np.where(own, 0, s).sum(1) / 12).all()
    assert evaluate_model(m, data, (10,))["hr@10"] >= 0.9  # 6 unseen own items vs 12 foreign: top-10 holds all own


def test_lightgcn_is_seeded():
    data, _ = two_communities()
    a = LightGCNRecommender(dim=8, epochs=3, batch=64, seed=3).fit(data).score(np.arange(5))
    b = LightGCNRecommender(dim=8, epochs=3, batch=64, seed=3).fit(data).score(np.arange(5))
    c = LightGCNRecommender(dim=8, epochs=3, batch=64, seed=4).fit(data).score(np.arange(5))
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_lightgcn_bad_input():
    with pytest.raises(ValueError, match="unknown parameters.*'layer'"):
        LightGCNRecommender(layer=2)
    empty = interactions([[0], [1]], 3)
    empty = Interactions(user_ids=empty.user_ids, item_ids=empty.item_ids, train=sp.csr_matrix((2, 3)),
                         seq_user=empty.seq_user, seq_item=empty.seq_item, seq_time=empty.seq_time, target=empty.target)
    with pytest.raises(ValueError, match="no interactions"):
        LightGCNRecommender(epochs=1).fit(empty)


# ------------------------------------------------------------------------------------------------- SASRec


def test_windows_by_hand():
    indptr, items = user_sequences(np.array([0, 0, 0, 0, 0, 2, 2]), np.array([5, 6, 7, 8, 9, 1, 2]), 3, 10)
    assert indptr.tolist() == [0, 5, 5, 7]
    x, y = training_windows(indptr, items, 3)
    # user 0: pairs 5→6, 6→7, 7→8, 8→9 cut from the recent end; user 1 has none; user 2: 1→2
    assert x.tolist() == [[7, 8, 9], [6, 0, 0], [2, 0, 0]]
    assert y.tolist() == [[7, 8, 9], [6, -100, -100], [2, -100, -100]]
    tokens, lengths = last_window(indptr, items, np.array([2, 1, 0]), 3)
    assert tokens.tolist() == [[2, 3, 0], [0, 0, 0], [8, 9, 10]] and lengths.tolist() == [2, 0, 3]


def test_sequences_reject_bad_event_lists():
    with pytest.raises(ValueError, match="sorted by user"):
        user_sequences(np.array([1, 0]), np.array([0, 1]), 2, 2)
    with pytest.raises(ValueError, match="seq_item holds indices outside"):
        user_sequences(np.array([0, 1]), np.array([0, 5]), 2, 2)
    with pytest.raises(ValueError, match="must be equal"):
        user_sequences(np.array([0, 1]), np.array([0]), 2, 2)
    with pytest.raises(ValueError, match="loss must be"):
        SASRecRecommender(loss="bpr")
    with pytest.raises(ValueError, match="not divisible"):
        SASRecRecommender(dim=10, heads=3)
    with pytest.raises(ValueError, match="no user has two or more events"):
        SASRecRecommender(epochs=1).fit(interactions([[0], [1]], 3))


def test_sampled_softmax_covering_the_catalogue_equals_full_softmax():
    torch.manual_seed(0)
    h, table, target = torch.randn(7, 4), torch.randn(5, 4), torch.tensor([0, 1, 2, 3, 4, 0, 1])
    full = torch.nn.functional.cross_entropy(*next_item_logits(h, table, target, "ce"))
    # enough uniform draws to contain every item: masking the true item leaves each class once or more;
    # deduplicated (negatives = all items), sampled softmax is exactly the full softmax
    neg_logits, neg_target = next_item_logits(h, table, target, "sampled", negatives=400)
    assert (neg_target == 0).all() and neg_logits.shape == (7, 401)
    dedup = torch.stack([torch.cat([row[:1], row[1:][torch.isfinite(row[1:])].unique()]) for row in neg_logits])
    sampled = torch.nn.functional.cross_entropy(dedup, neg_target)
    torch.testing.assert_close(sampled, full)


@pytest.mark.parametrize("loss", ["ce", "sampled"])
def test_sasrec_learns_a_deterministic_next_item(loss):
    data = cyclic()
    threads = torch.get_num_threads()
    m = SASRecRecommender(dim=32, heads=2, dropout=0.1, max_len=8, lr=5e-3, epochs=40, batch=16, loss=loss,
                          negatives=16, threads=1).fit(data)
    assert torch.get_num_threads() == threads
    assert m.losses[-1] < 0.5 * m.losses[0]
    users = np.arange(data.n_users)
    s = m.score(users)
    assert s.shape == (data.n_users, data.n_items) and s.dtype == np.float32 and np.isfinite(s).all()
    top3 = np.argsort(-s, axis=1)[:, :3]
    assert (top3 == data.target[:, None]).any(1).mean() >= 0.9
    assert evaluate_model(m, data, (10,))["hr@10"] >= 0.9  # through the protocol (history filtered)


def test_sasrec_scores_users_without_events_as_zero_and_is_seeded():
    data = interactions([[0, 1, 2, 3], [], [2, 3, 4]], 6)
    a = SASRecRecommender(dim=8, epochs=2, max_len=4).fit(data)
    b = SASRecRecommender(dim=8, epochs=2, max_len=4).fit(data)
    s = a.score(np.array([1, 0, 2]))
    assert (s[0] == 0).all() and np.isfinite(s).all() and not (s[1] == 0).all()
    np.testing.assert_array_equal(s, b.score(np.array([1, 0, 2])))
    # chunked scoring agrees with one pass
    np.testing.assert_allclose(a.score(np.array([0, 2]), chunk=1), a.score(np.array([0, 2])), rtol=1e-5, atol=1e-6)


def test_length_batches_cover_every_window_once_with_similar_lengths():
    lengths = np.random.default_rng(1).integers(1, 50, 203)
    batches = length_batches(lengths, 16, np.random.default_rng(0))
    flat = np.concatenate(batches)
    assert sorted(flat.tolist()) == list(range(203)) and max(len(b) for b in batches) == 16
    # length-sorted cutting: a batch's windows never differ more than the whole range allows per batch
    spread = sum(lengths[b].max() - lengths[b].min() for b in batches)
    assert spread <= lengths.max() - lengths.min()
    assert [b.tolist() for b in batches] != [b.tolist() for b in length_batches(lengths, 16, np.random.default_rng(1))]
