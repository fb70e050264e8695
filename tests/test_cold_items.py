"""Cold items in the fused model and in Serve: the seq table's text fill, and the cold-item protocol's judging.

The fill (:mod:`interestrec.recommend.coldfill`) is checked against its per-pair reference, at ``cold_alpha = 0``
against today's table byte for byte, and end to end: an item nobody interacted with, whose vector sits next to
a user's recent items, reaches that user's top-k through the fused model, the unpublished service and a
published version once ``cold_alpha > 0``, and never at 0. The protocol (:mod:`interestrec.evaluate.cold_protocol`)
is checked for choosing ``cold_alpha`` from validation targets only and for all / warm / cold counts that add up.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import scipy.sparse as sp

from fixtures.artifacts import make_artifacts
from interestrec import artifacts

SEQ_HEAVY = (0.25, 0.25, 0.1, 1.0)  # a grid point of the fused row: the seq term dominates


def _x(users: int = 30, items: int = 24, seed: int = 0) -> sp.csr_matrix:
    rng = np.random.default_rng(seed)
    x = (rng.random((users, items)) < 0.3).astype(np.float32)
    x[:, [3, 7, 11]] = 0  # nobody
    x[:, 5] = 0
    x[0, 5] = 1  # one user
    return sp.csr_matrix(x)


# ----------------------------------------------------------------------------------------------- the fill
@pytest.mark.parametrize("alpha,cold_support,k,per_row", [(1.0, 1.0, 3, 4), (0.5, 3.0, 2, 2), (2.0, 8.0, 50, 50)])
def test_fill_matches_the_per_pair_reference(alpha, cold_support, k, per_row):
    from interestrec.recommend.coldfill import cold_filled, filled_reference, item_support
    from interestrec.recommend.itemitem import fit_item_item

    x = _x()
    vecs = np.random.default_rng(1).normal(size=(24, 6)).astype(np.float32)
    vecs[7] = 0  # an item without text: no neighbours, no fill
    b = fit_item_item(x, lam=5.0, neighbours=6)
    t = cold_filled(b, x, vecs, alpha, cold_support, k, per_row)
    want = filled_reference(b, vecs, item_support(x), alpha, cold_support, k, per_row)
    np.testing.assert_allclose(t.toarray(), want, rtol=1e-5, atol=1e-6)
    added = (t - b).toarray()
    assert not b[:, 3].nnz and added[:, 3].any() and added[:, 11].any()  # the empty columns are filled
    assert not added[:, 7].any() and not np.diag(added).any() and (added >= 0).all()
    assert (np.count_nonzero(added, axis=1) <= per_row).all()  # sparse: at most per_row fill entries per row
    if cold_support == 1.0:  # the gate: only zero-support columns
        assert set(np.flatnonzero(np.abs(added).sum(0))) <= {3, 11}


def test_gate_and_neighbour_weights():
    from interestrec.recommend.coldfill import support_gate, text_neighbours, transfer_fill

    np.testing.assert_allclose(support_gate(np.array([0, 1, 2, 3, 9]), 3.0), [1, 2 / 3, 1 / 3, 0, 0], atol=1e-6)
    with pytest.raises(ValueError, match="cold_support"):
        support_gate(np.zeros(2), 0.0)
    vecs = np.array([[1, 0], [1, 0.1], [0, 1], [1, 1], [-1, 0]], np.float32)
    gate = np.array([1.0, 0, 0, 0, 0], np.float32)  # item 0 is the only target
    w = text_neighbours(vecs, gate, 2).toarray()
    assert w[1:].sum() == 0 and set(np.flatnonzero(w[0])) == {1, 3}  # its two nearest warm items (not the opposite 4)
    assert w[0].sum() == pytest.approx(1.0) and w[0, 1] > w[0, 3]
    b = sp.csr_matrix(np.array([[0, 0, 0, 0, 0], [0, 0, 0.5, 0, 0], [0, 0.4, 0, -1.0, 0], [0, 0.2, 0.3, 0, 0],
                                [0, 0, 0, 0, 0]], np.float32))
    f = transfer_fill(b, sp.csr_matrix(w), gate, per_row=5).toarray()
    # item 0's column: its neighbours' columns averaged (item 2's row: 0.4·w01 − 1.0·w03 < 0 is dropped)
    np.testing.assert_allclose(f[:, 0], [0, 0, 0, 0.2 * w[0, 1], 0], atol=1e-7)
    assert f[:, 1:].sum() == 0


def test_alpha_zero_leaves_the_table_byte_identical(tmp_path):
    from interestrec.recommend.coldfill import fill_table
    from interestrec.recommend.fused import FusedParams
    from interestrec.recommend.itemitem import fused_table, table_from_events, write_table

    rng = np.random.default_rng(2)
    user, item = rng.integers(0, 30, 300), rng.integers(0, 36, 300)  # items 36..39: no interactions
    vecs = rng.normal(size=(40, 8)).astype(np.float32)
    params = FusedParams(lam=5.0, neighbours=8)
    assert params.cold_alpha == 0.0  # the default: today's table
    old = table_from_events(user, item, 30, 40, 5.0, 8, item_vecs=vecs)
    new = fused_table(user, item, 30, 40, vecs, params)
    for attr in ("data", "indices", "indptr"):
        assert np.array_equal(getattr(old, attr), getattr(new, attr))
    write_table(str(tmp_path / "old.parquet"), old, np.arange(40) * 10)
    write_table(str(tmp_path / "new.parquet"), new, np.arange(40) * 10)
    assert (tmp_path / "old.parquet").read_bytes() == (tmp_path / "new.parquet").read_bytes()
    assert fill_table(old, sp.random(40, 40, density=0.1, format="csr"), 0.0) is old
    filled = fused_table(user, item, 30, 40, vecs, dataclasses.replace(params, cold_alpha=1.0))
    assert (abs(filled - old) > 0).nnz > 0


# ----------------------------------------------------------------------------------------------- a cold item recommended
@pytest.fixture(scope="module")
def cold_out(tmp_path_factory) -> tuple[Path, int, int]:
    """A pipeline output with one item nobody interacted with, its vector a copy of a user's last item's.

    Returns ``(out, user_id, cold_item_id)``.
    """
    out = make_artifacts(tmp_path_factory.mktemp("cold") / "out", graph=False)
    ev = artifacts.read_parquet(out / "ingest" / "events.parquet").to_pandas()
    ev = ev[ev.event.isin(["view", "rate"])]
    items = artifacts.read_parquet(out / "encode" / "items.parquet")
    ids = items["item_id"].to_numpy()
    vecs = artifacts.arrow_to_vectors(items["vector"]).copy()
    untouched = np.setdiff1d(ids, ev.item_id.unique())
    assert len(untouched), "the planted data leaves some items without interactions"
    cold = int(untouched[0])
    uid = int(ev.user_id.iloc[0])
    last = int(ev[ev.user_id == uid].sort_values("timestamp").item_id.iloc[-1])
    vecs[np.flatnonzero(ids == cold)[0]] = vecs[np.flatnonzero(ids == last)[0]]  # the same text as the last item
    artifacts.write_parquet(out / "encode" / "items.parquet",
                            pa.table({"item_id": pa.array(ids, pa.int64()), "vector": artifacts.vectors_to_arrow(vecs)}))
    return out, uid, cold


def _tuned(out: Path, alpha: float) -> None:
    params = {"weights": SEQ_HEAVY, "cold_alpha": alpha, "cold_neighbours": 3}
    artifacts.write_json(out / "evaluate" / "summary.json", {"models": {"fused": {"ndcg@10": 0.1, "params": params}}})


@pytest.mark.parametrize("alpha", [0.0, 2.0])
def test_an_item_without_interactions_is_recommended_only_with_the_fill(cold_out, alpha):
    from interestrec.recommend.service import RecommenderService

    out, uid, cold = cold_out
    _tuned(out, alpha)
    svc = RecommenderService(str(out))  # unpublished: the service fits the table as publish would
    j = int(np.searchsorted(svc.item_ids, cold))
    assert (svc.model.item_table[:, j].nnz > 0) == (alpha > 0)  # its column: empty without the fill
    top = [r["item_id"] for r in svc.recommend(uid, k=10)["items"]]
    assert (cold in top) == (alpha > 0), top


def test_the_published_table_carries_the_fill(cold_out, tmp_path):
    import shutil

    from interestrec.publish import publish
    from interestrec.recommend.itemitem import TABLE_FILE, read_table
    from interestrec.recommend.service import RecommenderService
    from interestrec.stages import StageContext

    src, uid, cold = cold_out
    out = tmp_path / "out"
    shutil.copytree(src, out)
    for stage in ("ingest", "encode", "cluster", "dynamics"):
        artifacts.write_json(out / stage / "summary.json", {"_run": {"output_hash": stage}})
    tops = {}
    for alpha in (0.0, 2.0):
        _tuned(out, alpha)
        version = publish(StageContext(out=str(out)))["path"]
        svc = RecommenderService(version)
        table = read_table(artifacts.join(version, TABLE_FILE), svc.item_ids)
        assert svc.arts.item_table is not None and (abs(svc.model.item_table - table) > 0).nnz == 0  # served as published
        assert (table[:, int(np.searchsorted(svc.item_ids, cold))].nnz > 0) == (alpha > 0)
        tops[alpha] = [r["item_id"] for r in svc.recommend(uid, k=10)["items"]]
    assert cold in tops[2.0] and cold not in tops[0.0]


# ----------------------------------------------------------------------------------------------- the protocol
@pytest.fixture(scope="module")
def phases(tmp_path_factory):
    import interestrec.evaluate.models  # noqa: F401  (registers the rows)
    from interestrec.data import load_ingest
    from interestrec.evaluate.data import build_interactions

    out = make_artifacts(tmp_path_factory.mktemp("protocol") / "out", d=32, graph=False)
    ing = load_ingest(str(out / "ingest"))
    ids = np.unique(ing.items["item_id"].to_numpy())
    return build_interactions(ing.events, ids, "valid", str(out)), build_interactions(ing.events, ids, "test", str(out))


MAIN = {"fused": {"params": {"weights": SEQ_HEAVY, "seq_half_life": 5.0}, "ndcg@10": 0.2},
        "ease": {"params": {"lam": 50.0}, "ndcg@10": 0.1}, "mostpop": {"params": {}, "ndcg@10": 0.05}}


def test_cold_alpha_is_chosen_on_validation_targets_only(phases):
    from interestrec.evaluate.cold_protocol import cold_item_protocol

    valid, test = phases
    kw = dict(share=0.3, seed=1, alpha_grid=(0.0, 1.0, 4.0), ablations=False, n_resamples=100, log=lambda *_: None)
    first = cold_item_protocol(valid, test, MAIN, ("fused",), **kw)
    rng = np.random.default_rng(5)
    shuffled = dataclasses.replace(test, target=np.where(test.target >= 0, rng.integers(0, test.n_items, test.n_users), -1))
    second = cold_item_protocol(valid, shuffled, MAIN, ("fused",), **kw)
    assert first["cold_alpha"] == second["cold_alpha"]  # the tried validation scores and the choice
    assert first["models"]["fused"]["all"] != second["models"]["fused"]["all"]  # the test numbers did change
    tried = first["cold_alpha"]["tried"]
    assert [t["cold_alpha"] for t in tried] == [0.0, 1.0, 4.0]
    # the rule: the most cold targets reached among the fills whose warm NDCG@10 is not significantly below no fill
    assert tried[0]["eligible"] and tried[0]["warm_ndcg@10_vs_0"]["diff"] == 0.0
    assert all(t["eligible"] == (t["warm_ndcg@10_vs_0"]["high"] >= 0) for t in tried)
    best = max(t["cold"]["recall@20"] for t in tried if t["eligible"])
    assert first["cold_alpha"]["chosen"] == min(t["cold_alpha"] for t in tried
                                                if t["eligible"] and t["cold"]["recall@20"] == best)
    assert first["models"]["fused"]["params"]["cold_alpha"] == first["cold_alpha"]["chosen"]
    # and the validation targets are what it reads
    moved = dataclasses.replace(valid, target=np.where(valid.target >= 0, rng.integers(0, valid.n_items, valid.n_users), -1))
    assert cold_item_protocol(moved, test, MAIN, ("fused",), **kw)["cold_alpha"]["tried"] != tried


def test_all_warm_cold_counts_add_up_and_intervals_pair_the_same_users(phases):
    from interestrec.evaluate.cold import cold_targets
    from interestrec.evaluate.cold_protocol import cold_setup, judge_cold_items

    valid, test = phases
    setup = cold_setup(valid, test, 0.25, 3)
    main = {**MAIN, "fused": {**MAIN["fused"], "params": {**MAIN["fused"]["params"], "cold_alpha": 1.0}}}
    out, rankings = judge_cold_items(setup, main, ("fused", "ease", "mostpop", "nope"), True, n_resamples=100,
                                     log=lambda *_: None)
    t = out["targets"]
    assert t["all"] == t["warm"] + t["cold"] == int((test.target >= 0).sum()) and t["cold"] > 0
    assert t["cold"] == int(np.isin(test.target, setup.cold).sum()) == out["users"]
    assert out["skipped"] == {"nope": "not registered"}
    assert set(out["models"]) == {"fused", "ease", "mostpop", "fused-no_llm", "fused-no_graph", "fused-no_pop",
                                  "fused-seq_only", "fused-no_cold"}
    for name, m in out["models"].items():
        assert m["all"]["users"] == m["warm"]["users"] + m["cold"]["users"] == t["all"], name
        assert m["cold"]["users"] == t["cold"] and m["recall@20"] == m["cold"]["recall@20"]
        mixed = (m["warm"]["recall@20"] * t["warm"] + m["cold"]["recall@20"] * t["cold"]) / t["all"]
        assert m["all"]["recall@20"] == pytest.approx(mixed)
        r = rankings[name]
        assert int(cold_targets(setup.test, r.users).sum()) == t["cold"]
    assert out["models"]["ease"]["cold"]["recall@20"] <= out["chance_recall@20"] * 2  # no column, no signal
    assert out["best_collaborative"] == "ease"  # the main table's NDCG@10 decides, not the cold targets
    iv = out["fused_vs"]["fused-no_cold"]
    assert set(iv) == {"all", "warm", "cold"} and iv["cold"]["recall@20"]["users"] == t["cold"]
    diff = out["models"]["fused"]["cold"]["recall@20"] - out["models"]["fused-no_cold"]["cold"]["recall@20"]
    assert iv["cold"]["recall@20"]["diff"] == pytest.approx(diff)
    assert out["models"]["fused"]["cold"]["recall@20"] > out["models"]["fused-no_cold"]["cold"]["recall@20"]


def test_content_only_texts_write_descriptions_as_the_encode_stage_does():
    from interestrec.encode.phases import phase_item_texts
    from interestrec.evaluate.cold import content_only_texts

    items = pa.table({"item_id": [1, 2], "title": ["Heat", "Alien"], "year": [1995, None], "genres": [["Crime"], []],
                      "description": ["a heist in los angeles", None]})
    events = pa.table({"user_id": [0], "item_id": [1], "timestamp": [0], "event": ["view"], "split": ["train"]})
    ids = np.array([1, 2])
    assert content_only_texts(items, ids, np.array([0, 1])) == ["Heat (1995). Genres: Crime.", "Alien."]
    cut = content_only_texts(items, ids, np.array([0, 1]), description_words=2)
    assert cut == ["Heat (1995). Genres: Crime. a heist …", "Alien."]
    assert cut == phase_item_texts(items, events, "test", description_words=2)[1]  # no tag events: the same texts
