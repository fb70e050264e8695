"""Judging the evaluation table: ranks files, ablation rows, paired bootstrap intervals, cold items and cold users.

Pure-numpy parts run on planted arrays; the stage test runs the real evaluate stage (no Ray needed) on the small
planted pipeline output of ``fixtures.artifacts.make_artifacts`` with the packaged MiniLM re-encoding the cold items.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from fixtures.artifacts import make_artifacts


# ----------------------------------------------------------------------------------------------- bootstrap
def test_bootstrap_identical_ranks_give_a_zero_interval():
    from interestrec.evaluate.judge import ndcg_per_user, paired_bootstrap

    r = np.random.default_rng(0).integers(0, 50, 300)
    out = paired_bootstrap(ndcg_per_user(r), ndcg_per_user(r), 2000, seed=1)
    assert out == {"diff": 0.0, "low": 0.0, "high": 0.0, "users": 300, "resamples": 2000}


def test_bootstrap_interval_covers_a_planted_difference_and_matches_the_reference():
    from interestrec.evaluate.judge import paired_bootstrap, paired_bootstrap_reference

    rng = np.random.default_rng(2)
    true = 0.05
    covered, widths = 0, []
    for rep in range(40):
        b = rng.random(400)
        a = b + true + rng.normal(0, 0.2, 400)
        out = paired_bootstrap(a, b, 500, seed=rep)
        covered += out["low"] <= true <= out["high"]
        widths.append(out["high"] - out["low"])
    assert covered >= 34  # nominal 95% of 40 = 38; binomial slack
    # width ≈ 2 · 1.96 · sd / sqrt(m)
    assert np.median(widths) == pytest.approx(2 * 1.96 * 0.2 / np.sqrt(400), rel=0.15)
    a, b = rng.random(60), rng.random(60)
    fast, ref = paired_bootstrap(a, b, 300, seed=7), paired_bootstrap_reference(a, b, 300, seed=7)
    assert fast["diff"] == pytest.approx(ref["diff"]) and fast["low"] == pytest.approx(ref["low"])
    assert fast["high"] == pytest.approx(ref["high"])
    with pytest.raises(ValueError, match="equal 1-d shapes"):
        paired_bootstrap(a, b[:10])


def test_best_baseline_rule_and_goals():
    from interestrec.evaluate.judge import best_baseline, comparisons, goal_lines, goals

    models = {"mostpop": {"baseline": True, "ndcg@10": 0.02}, "ease": {"baseline": True, "ndcg@10": 0.04},
              "llm": {"baseline": False, "ndcg@10": 0.01}, "fused": {"baseline": False, "ndcg@10": 0.066},
              "fused-seq_only": {"baseline": False, "ndcg@10": 0.06}}
    assert best_baseline(models) == "ease"
    ranks = {"ease": {1: 3, 2: 0}, "fused": {1: 0, 2: 0, 3: 5}, "mostpop": {1: 9, 2: 9}, "llm": {1: 1, 2: 1},
             "fused-seq_only": {1: 0, 2: 0, 3: 5}}
    judged = comparisons(models, ranks, ["fused-seq_only"], 200, 0)
    assert set(judged["vs_best_baseline"]) == {"mostpop", "llm", "fused", "fused-seq_only"}
    assert judged["vs_best_baseline"]["fused"]["users"] == 2  # users both rows ranked
    assert judged["fused_vs_ablation"]["fused-seq_only"]["diff"] == 0.0
    g = goals(models, judged, {"models": {"llm_frozen": {"recall@20": 0.1}}})
    assert g["fused_over_seq_only"]["ratio"] == pytest.approx(1.1) and g["fused_over_seq_only"]["holds"] is False
    assert g["best_llm_over_ease"]["row"] == "llm" and g["best_llm_over_ease"]["ratio"] == pytest.approx(0.25)
    assert g["cold_llm_adapted_over_frozen"]["holds"] is None  # llm_adapted not measured
    assert g["fused_over_best_baseline"]["ratio"] == pytest.approx(1.65) and g["fused_over_best_baseline"]["holds"]
    assert g["cold_fused_over_frozen"]["holds"] is None and g["warm_fused_vs_no_cold"]["holds"] is None
    assert len(goal_lines(g)) == 6 and "not measured" in goal_lines(g)[2]
    iv = {"diff": -0.001, "low": -0.004, "high": 0.002}
    cold = {"models": {"fused": {"recall@20": 0.08, "warm": {"ndcg@10": 0.199}},
                       "fused-no_cold": {"recall@20": 0.0, "warm": {"ndcg@10": 0.2}}, "llm_frozen": {"recall@20": 0.1}},
            "fused_vs": {"fused-no_cold": {"warm": {"ndcg@10": iv}}}}
    g = goals(models, judged, cold)
    assert g["cold_fused_over_frozen"]["ratio"] == pytest.approx(0.8) and g["cold_fused_over_frozen"]["holds"] is False
    assert g["warm_fused_vs_no_cold"]["holds"] is True and g["warm_fused_vs_no_cold"]["ratio"] == pytest.approx(0.995)
    g = goals(models, judged, {**cold, "fused_vs": {"fused-no_cold": {"warm": {"ndcg@10": {**iv, "high": -0.001}}}}})
    assert g["warm_fused_vs_no_cold"]["holds"] is False
    assert any("target interval ≥ 0" in line for line in goal_lines(g))


# ----------------------------------------------------------------------------------------------- cold items
def _interactions(n_users=30, n_items=40, seed=0):
    import scipy.sparse as sp

    from interestrec.evaluate.base import Interactions

    rng = np.random.default_rng(seed)
    su = np.repeat(np.arange(n_users), 6)
    si = rng.integers(0, n_items, len(su))
    st = np.tile(np.arange(6), n_users) * 100
    train = sp.csr_matrix((np.ones(len(su), np.float32), (su, si)), shape=(n_users, n_items))
    train.data[:] = 1.0
    return Interactions(np.arange(n_users) + 1, np.arange(n_items) * 10, train, su, si, st,
                        rng.integers(0, n_items, n_users), phase="test")


def test_withholding_leaves_no_train_interaction_of_a_cold_item():
    from interestrec.evaluate.cold import choose_cold_items, cold_targets, withhold_items

    data = _interactions()
    cold = choose_cold_items(data.n_items, 0.15, seed=3)
    assert len(cold) == 6 and np.array_equal(cold, choose_cold_items(data.n_items, 0.15, seed=3))
    w = withhold_items(data, cold)
    assert w.train[:, cold].nnz == 0 and not np.isin(w.seq_item, cold).any()
    warm = ~np.isin(data.seq_item, cold)
    assert len(w.seq_item) == warm.sum() and (w.train != 0).sum() == (data.train[:, np.setdiff1d(np.arange(40), cold)] != 0).sum()
    assert np.array_equal(w.target, data.target)  # every target is kept: warm and cold ones are judged apart
    users = np.flatnonzero(w.target >= 0)
    assert np.array_equal(cold_targets(w, users), np.isin(data.target[users], cold))
    assert not cold_targets(data, users).any()  # nothing withheld, nothing cold


def test_a_cf_row_cannot_place_cold_items():
    import interestrec.evaluate.models  # noqa: F401
    from interestrec.evaluate.base import REGISTRY
    from interestrec.evaluate.cold import choose_cold_items, withhold_items

    data = _interactions(60, 50, seed=1)
    cold = choose_cold_items(data.n_items, 0.2, seed=0)
    w = withhold_items(data, cold)
    for name in ("ease", "itemknn", "mostpop"):
        s = REGISTRY[name](**REGISTRY[name].grid[0]).fit(w).score(np.arange(w.n_users))
        # every cold item gets one and the same score per user: their order is the tie rule's, not the model's
        assert np.ptp(s[:, cold], axis=1).max() == 0.0, name


def test_cold_user_slice_counts_users_by_training_events():
    from interestrec.evaluate.cold import cold_user_slice
    from interestrec.evaluate.protocol import Ranking

    data = _interactions(10, 20)
    keep = ~((data.seq_user < 4) & (data.seq_time >= 300))  # users 0..3 keep 3 events
    data = dataclasses.replace(data, seq_user=data.seq_user[keep], seq_item=data.seq_item[keep],
                               seq_time=data.seq_time[keep])
    r = Ranking(users=np.arange(10), rank=np.array([0, 50, 50, 50, 0, 0, 0, 0, 0, 0]), topk=np.zeros((10, 1), np.int64),
                skipped_users=0)
    out = cold_user_slice(data, {"m": r}, 3)
    assert out["users"] == 4 and out["models"]["m"]["users"] == 4
    assert out["models"]["m"]["ndcg@10"] == pytest.approx(0.25) and out["models"]["m"]["recall@20"] == 0.25


# ----------------------------------------------------------------------------------------------- the stage
@pytest.fixture(scope="module")
def evaluated(tmp_path_factory, ray_local):  # the stage runs its trials on Ray
    from interestrec.config import PipelineConfig
    from interestrec.evaluate.config import EvaluateConfig
    from interestrec.evaluate.stage import run
    from interestrec.stages import StageContext

    out = make_artifacts(tmp_path_factory.mktemp("judge") / "out", d=384)
    cfg = EvaluateConfig(models=("mostpop", "ease", "fused"), tune=True, bootstrap_resamples=200,
                         cold_item_share=0.2, cold_item_models=("llm_frozen", "fused", "ease", "mostpop"))
    summary = run(StageContext(out=str(out), config=dataclasses.replace(PipelineConfig(), evaluate=cfg)))
    return out, summary


def test_ranks_files_match_the_protocol(evaluated):
    from interestrec import artifacts
    from interestrec.data import load_ingest
    from interestrec.evaluate.base import REGISTRY
    from interestrec.evaluate.data import build_interactions

    out, summary = evaluated
    rows = {"mostpop", "ease", "fused", "fused-no_llm", "fused-no_graph", "fused-no_pop", "fused-seq_only"}
    if summary["models"]["fused"]["params"].get("cold_alpha", 0) > 0:  # a text fill chosen on validation to remove
        rows.add("fused-no_cold")
    assert set(summary["ranks"]["rows"]) == rows
    ing = load_ingest(str(out / "ingest"))
    test = build_interactions(ing.events, np.unique(ing.items["item_id"].to_numpy()), "test", str(out))
    scores = REGISTRY["mostpop"]().fit(test).score(np.arange(test.n_users))
    t = artifacts.read_parquet(out / "evaluate" / "ranks" / "mostpop.parquet").to_pandas()
    assert list(t.columns) == ["user_id", "rank"] and len(t) == (test.target >= 0).sum()
    for uid, rank in zip(t.user_id, t["rank"]):
        u = int(np.searchsorted(test.user_ids, uid))
        s = scores[u].astype(np.float64)
        s[test.train[u].indices] = -np.inf
        i = test.target[u]
        assert rank == int((s > s[i]).sum() + ((s == s[i]) & (np.arange(len(s)) < i)).sum())  # ties by item index
    ndcg = np.where(t["rank"] < 10, 1 / np.log2(t["rank"] + 2.0), 0).mean()
    assert ndcg == pytest.approx(summary["models"]["mostpop"]["ndcg@10"])


def test_ablation_rows_differ_only_in_the_removed_term(evaluated):
    _, summary = evaluated
    m = summary["models"]
    tuned = m["fused"]["params"]
    names = ("llm", "graph", "pop", "seq")
    for row, removed in (("fused-no_llm", {"llm"}), ("fused-no_graph", {"graph"}), ("fused-no_pop", {"pop"}),
                         ("fused-seq_only", {"llm", "graph", "pop"}), ("fused-no_cold", set())):
        if row not in m:
            assert row == "fused-no_cold" and tuned.get("cold_alpha", 0) == 0
            continue
        p = m[row]["params"]
        text_free = row in ("fused-no_cold", "fused-no_llm")  # no_llm: no language model anywhere
        same = ("weights", "cold_alpha", "table_beta") if text_free else ("weights",)
        assert {k: v for k, v in p.items() if k not in same} == {k: v for k, v in tuned.items() if k not in same}
        assert p.get("cold_alpha", 0) == (0.0 if text_free else tuned.get("cold_alpha", 0))
        assert p.get("table_beta", 0) == (0.0 if row == "fused-no_llm" else tuned.get("table_beta", 0))
        for n, w_row, w_fused in zip(names, p["weights"], tuned["weights"]):
            assert w_row == (0.0 if n in removed else w_fused), (row, n)
        c = m[row]["fused_minus_this"]
        assert c["low"] <= c["diff"] <= c["high"]
        assert c["diff"] == pytest.approx(m["fused"]["ndcg@10"] - m[row]["ndcg@10"])
    assert summary["comparisons"]["best_baseline"] in ("mostpop", "ease")
    assert set(summary["goals"]) == {"fused_over_seq_only", "best_llm_over_ease", "cold_llm_adapted_over_frozen",
                                     "cold_fused_over_frozen", "warm_fused_vs_no_cold", "fused_over_best_baseline"}


def test_an_ablation_removes_exactly_its_term(evaluated):
    import interestrec.evaluate.models.fused  # noqa: F401
    from interestrec.data import load_ingest
    from interestrec.evaluate.base import REGISTRY
    from interestrec.evaluate.data import build_interactions
    from interestrec.evaluate.models.fused import ablation_params
    from interestrec.recommend.zscore import z_rows

    out, _ = evaluated
    ing = load_ingest(str(out / "ingest"))
    test = build_interactions(ing.events, np.unique(ing.items["item_id"].to_numpy()), "test", str(out))
    tuned = {"weights": (0.25, 0.5, 0.1, 1.0), "seq_half_life": 5.0}
    users = np.arange(8)
    full = REGISTRY["fused"](**tuned).fit(test).model
    terms = full.components(users)
    for row, name in (("fused-no_llm", "llm"), ("fused-no_graph", "graph"), ("fused-no_pop", "pop")):
        ablated = REGISTRY["fused"](**ablation_params(tuned, row)).fit(test).model
        w = getattr(full.weights, name)
        np.testing.assert_allclose(full.score(users) - ablated.score(users), w * z_rows(getattr(terms, name)), atol=1e-4)
    seq_only = REGISTRY["fused"](**ablation_params(tuned, "fused-seq_only")).fit(test).model
    np.testing.assert_allclose(seq_only.score(users), z_rows(terms.seq), atol=1e-5)
    with pytest.raises(ValueError, match="unknown ablation"):
        ablation_params(tuned, "fused-no_seq")


def test_content_places_cold_items_a_cf_row_cannot(evaluated):
    import interestrec.evaluate.models  # noqa: F401
    from interestrec.data import load_ingest
    from interestrec.evaluate.cold_protocol import cold_item_protocol
    from interestrec.evaluate.data import build_interactions

    out, _ = evaluated
    ing = load_ingest(str(out / "ingest"))
    ids = np.unique(ing.items["item_id"].to_numpy())
    valid, test = (build_interactions(ing.events, ids, phase, str(out)) for phase in ("valid", "test"))
    main = {"fused": {"params": {"weights": (1.0, 0.0, 0.0, 0.0)}}, "ease": {"params": {"lam": 100.0}}}
    c = cold_item_protocol(valid, test, main, ("fused", "ease", "nope"), 0.3, 1, items=None, ablations=False,
                           n_resamples=100, log=lambda *_: None)
    assert c["skipped"] == {"nope": "not registered"} and c["users"] >= 10 and c["cold_alpha"]["chosen"] == 0.0
    assert c["models"]["ease"]["recall@20"] <= c["chance_recall@20"]
    assert c["models"]["fused"]["recall@20"] >= 1.5 * c["chance_recall@20"]  # planted topics in the item vectors


def test_cold_item_protocol_in_the_stage(evaluated):
    _, summary = evaluated
    c = summary["cold_items"]
    assert c["items"] == 48 and c["users"] > 0
    # llm_frozen is registered but its vectors come from the adapt stage, which this output never ran
    assert set(c["skipped"]) == {"llm_frozen"} and c["skipped"]["llm_frozen"].startswith("missing artifacts:")
    assert "adapt/items_frozen.parquet" in c["skipped"]["llm_frozen"]
    ablations = {"fused-no_llm", "fused-no_graph", "fused-no_pop", "fused-seq_only"}
    alpha = c["cold_alpha"]["chosen"]
    assert summary["models"]["fused"]["params"].get("cold_alpha", 0.0) == alpha  # what publish serves
    assert set(c["models"]) == {"fused", "ease", "mostpop"} | ablations | ({"fused-no_cold"} if alpha > 0 else set())
    assert all(v["users"] == c["users"] == c["targets"]["cold"] for v in c["models"].values())
    assert c["targets"]["all"] == c["targets"]["warm"] + c["targets"]["cold"] == summary["protocol"]["users"]
    assert [t["cold_alpha"] for t in c["cold_alpha"]["tried"]] == sorted(c["cold_alpha"]["grid"])
    assert c["best_collaborative"] == summary["comparisons"]["best_baseline"]
    assert set(c["fused_vs"]) == set(c["models"]) - {"fused"}
    assert set(summary["ranks"]["cold_rows"]) == set(c["models"])
    # the content term (planted topics, content-only text of the cold items) places cold items better than a CF row
    assert c["models"]["fused"]["recall@20"] >= c["models"]["mostpop"]["recall@20"]
    assert summary["cold_users"]["users"] == 0  # every planted user has ≥ 10 training events


# ----------------------------------------------------------------------------------------------- publish
def test_publish_fits_the_item_table_from_the_version_being_published(tmp_path):
    import pyarrow.compute as pc

    from interestrec import artifacts
    from interestrec.publish import publish
    from interestrec.recommend import artifacts as ra
    from interestrec.recommend.itemitem import TABLE_FILE, read_table, table_from_events
    from interestrec.stages import StageContext

    out = make_artifacts(tmp_path / "out", graph=False, n_users=30, n_items=80)
    for stage in ("ingest", "encode", "cluster", "dynamics"):
        artifacts.write_json(out / stage / "summary.json", {"_run": {"output_hash": stage}})

    def published(params: dict):
        artifacts.write_json(out / "evaluate" / "summary.json", {"models": {"fused": {"ndcg@10": 0.1, "params": params}}})
        v = publish(StageContext(out=str(out)))["path"]
        a = ra.load(v)
        return a, read_table(artifacts.join(v, TABLE_FILE), a.item_ids)

    a1, t1 = published({"lam": 50.0, "neighbours": 8})
    ev = artifacts.read_parquet(out / "ingest" / "events.parquet")  # new data: the first ten users leave
    artifacts.write_parquet(out / "ingest" / "events.parquet", ev.filter(pc.greater_equal(ev["user_id"], 1010)))
    a2, t2 = published({"lam": 10.0, "neighbours": 4})
    assert len(a2.user_ids) == 20 and len(a1.user_ids) == 30
    want = table_from_events(a2.ev_user, a2.ev_item, 20, len(a2.item_ids), 10.0, 4)
    assert (abs(t2 - want) > 1e-5).nnz == 0 and (abs(t2 - t1) > 1e-5).nnz > 0
    assert max(np.diff(t2.indptr)) <= 4


def test_report_renders_intervals_ablations_and_cold_tables(evaluated, tmp_path):
    from interestrec import artifacts
    from interestrec.report.html import write_report
    from interestrec.report.text import format_summary, interval

    _, summary = evaluated
    out = tmp_path / "out"
    artifacts.write_json(out / "evaluate" / "summary.json", summary)
    page = Path(write_report(str(out))).read_text()
    best = summary["comparisons"]["best_baseline"]
    assert f"NDCG@10 − {best} [95%]" in page and "Ablations of the fused row" in page and "Cold items (48 items" in page
    c = summary["models"]["fused"]["vs_best_baseline"]
    assert interval(c) in page and interval(summary["comparisons"]["fused_vs_ablation"]["fused-no_pop"]) in page
    text = format_summary("evaluate", summary)
    assert interval(c) in text and "fused - fused-seq_only" in text and "cold items llm_frozen: skipped" in text


def test_no_llm_ablation_removes_the_language_model_everywhere():
    """fused-no_llm: the llm term, L3AE's text pull and the cold items' text fill all go; the rest is kept."""
    from interestrec.evaluate.models.fused import ablation_params, ablation_rows

    tuned = {"weights": (0.5, 0.25, 0.1, 1.0), "seq_half_life": 5.0, "table_beta": 25.0, "cold_alpha": 1.5}
    p = ablation_params(tuned, "fused-no_llm")
    assert p == {"weights": (0.0, 0.25, 0.1, 1.0), "seq_half_life": 5.0, "table_beta": 0.0, "cold_alpha": 0.0}
    assert ablation_params(tuned, "fused-no_graph")["table_beta"] == 25.0
    assert ablation_params(tuned, "fused-no_cold") == {**tuned, "cold_alpha": 0.0}
    assert "fused-no_llm" in ablation_rows({**tuned, "cold_alpha": 0.0})
    assert "fused-no_cold" not in ablation_rows({**tuned, "cold_alpha": 0.0})
