"""The evaluate stage on the cluster: Ray Tune trials for every row's grid, refits and sharded ranking as Ray
tasks — the same table, ranks and choices as the one-process reference, trial results kept under
``evaluate/tune/``, ASHA stopping a row's weak grid points early."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from fixtures.artifacts import make_artifacts

ROWS = ("mostpop", "itemknn", "ease", "lightgcn", "fused")


@pytest.fixture(scope="module")
def small_out(tmp_path_factory) -> Path:
    return make_artifacts(tmp_path_factory.mktemp("eval-tune") / "out", d=32, graph=False)


def _evaluate(out: Path, **settings) -> dict:
    from interestrec.config import PipelineConfig
    from interestrec.evaluate.config import EvaluateConfig
    from interestrec.evaluate.stage import run
    from interestrec.stages import StageContext

    base = dict(models=ROWS, cold_item_share=0.0, bootstrap_resamples=100, early_stop=False,
                grids={"lightgcn": ({"dim": 16, "layers": 1}, {"dim": 32, "layers": 2}),
                       "itemknn": ({"k": 10}, {"k": 40})}, params={"lightgcn": {"epochs": 4}})
    return run(StageContext(out=str(out), config=PipelineConfig(evaluate=EvaluateConfig(**{**base, **settings}))))


def _table(summary: dict) -> dict:
    """Every row's metrics and params (not its seconds or trial bookkeeping)."""
    drop = {"seconds", "tuning"}
    return {n: {k: v for k, v in m.items() if k not in drop} for n, m in summary["models"].items()}


def _ranks(out: Path) -> dict:
    import pyarrow.parquet as pq

    return {p.stem: pq.read_table(p).to_pydict() for p in sorted((out / "evaluate" / "ranks").glob("*.parquet"))}


def test_tune_path_gives_the_reference_table_and_ranks(ray_local, small_out, tmp_path):
    import shutil

    ref_out, tune_out = tmp_path / "ref", tmp_path / "tune"
    shutil.copytree(small_out, ref_out)
    shutil.copytree(small_out, tune_out)
    ref = _evaluate(ref_out, executor="local")
    got = _evaluate(tune_out, executor="ray", workers=2, user_chunk=7)  # 7: shards of several chunks each
    assert _table(got) == _table(ref)
    assert _ranks(tune_out) == _ranks(ref_out)
    assert got["comparisons"] == ref["comparisons"]
    for row in ("itemknn", "lightgcn", "fused"):  # the same validation scores, point by point
        assert [t["valid_ndcg@10"] for t in got["models"][row]["tuning"]] == \
               [t["valid_ndcg@10"] for t in ref["models"][row]["tuning"]]
    assert len(got["models"]["fused"]["tuning"]) > 1 and len(got["models"]["lightgcn"]["tuning"]) == 2
    assert "Ray Tune" in got["protocol"]["executor"] and "one process" in ref["protocol"]["executor"]
    # the trial results stay with the run: Tune's experiment and one record per point
    trials = json.loads((tune_out / "evaluate" / "tune" / "trials.json").read_text())
    assert sorted(trials) == ["ease", "fused", "itemknn", "lightgcn"]  # mostpop has one point: not tried
    assert [t["params"]["k"] for t in trials["itemknn"]] == [10, 40]
    assert all(t["node"] for t in trials["fused"])
    assert (tune_out / "evaluate" / "tune" / "grid").is_dir()
    assert not (ref_out / "evaluate" / "tune").exists()


def test_asha_stops_a_rows_weak_point_early_and_keeps_its_curve(ray_local, small_out, tmp_path):
    import shutil

    out = tmp_path / "out"
    shutil.copytree(small_out, out)
    grid = ({"dim": 32, "layers": 2, "lr": 0.01}, {"dim": 32, "layers": 2, "lr": 1e-7})  # the second cannot learn
    got = _evaluate(out, models=("lightgcn",), ablations=False, executor="ray", workers=1, early_stop=True,
                    early_stop_grace=2, early_stop_reduction=2, grids={"lightgcn": grid},
                    params={"lightgcn": {"epochs": 8}})
    tried = got["models"]["lightgcn"]["tuning"]
    assert [t["params"]["lr"] for t in tried] == [0.01, 1e-7]
    good, weak = tried
    assert not good["stopped_early"] and good["epochs"] == 8
    assert [c["epoch"] for c in good["curve"]] == list(range(1, 9))  # a validation score after every epoch
    assert weak["stopped_early"] and weak["epochs"] < 8, weak  # one trial at a time: ASHA compares with the first
    assert weak["valid_ndcg@10"] < good["valid_ndcg@10"]
    assert got["models"]["lightgcn"]["params"]["lr"] == 0.01
    assert got["models"]["lightgcn"]["valid_ndcg@10"] == pytest.approx(good["valid_ndcg@10"], abs=1e-5)


def test_the_early_stop_hook_does_not_change_what_a_row_learns(small_out):
    from interestrec.data import load_ingest
    from interestrec.evaluate.data import build_interactions
    from interestrec.evaluate.models import registered

    ing = load_ingest(str(small_out / "ingest"))
    valid = build_interactions(ing.events, np.unique(ing.items["item_id"].to_numpy()), "valid", str(small_out))
    seen = []
    for row in ("lightgcn", "sasrec"):
        cls = registered()[row]
        plain = cls(epochs=3, dim=16).fit(valid)
        hooked = cls(epochs=3, dim=16)
        hooked.epoch_hook = lambda epoch, m=hooked, r=row: seen.append((r, epoch, float(m.score(np.arange(3)).sum())))
        hooked.fit(valid)
        users = np.arange(valid.n_users)
        np.testing.assert_array_equal(plain.score(users), hooked.score(users))
    assert [(r, e) for r, e, _ in seen] == [("lightgcn", 1), ("lightgcn", 2), ("lightgcn", 3),
                                            ("sasrec", 1), ("sasrec", 2), ("sasrec", 3)]


def test_a_bad_grid_point_is_named_before_any_trial_starts(ray_local, small_out, tmp_path):
    import shutil

    out = tmp_path / "out"
    shutil.copytree(small_out, out)
    with pytest.raises(ValueError, match=r"grid point lightgcn .*'dim': 0.*lightgcn.dim must be ≥ 1"):
        _evaluate(out, models=("lightgcn",), ablations=False, executor="ray", workers=1,
                  grids={"lightgcn": ({"dim": 8}, {"dim": 0})})


@pytest.mark.parametrize(("n", "shards", "chunk"), [(0, 2, 4), (1, 2, 4), (10, 3, 4), (10, 2, 100), (37, 4, 5)])
def test_shards_start_on_chunk_boundaries_and_cover_every_user(n, shards, chunk):
    from interestrec.evaluate.parallel import shard_users

    users = np.arange(100, 100 + n)
    parts = shard_users(users, shards, chunk)
    assert len(parts) <= shards
    np.testing.assert_array_equal(np.concatenate(parts) if parts else np.zeros(0, int), users)
    starts = np.cumsum([0] + [len(p) for p in parts[:-1]])
    assert all(s % chunk == 0 for s in starts) and all(len(p) for p in parts)


def test_sharded_ranking_equals_the_one_process_ranking_on_movielens(ray_local, ml_small, tmp_path):
    from interestrec.data import IngestConfig, load_ingest
    from interestrec.data.stage import ingest
    from interestrec.evaluate.data import build_interactions
    from interestrec.evaluate.models import registered
    from interestrec.evaluate.parallel import rank_sharded
    from interestrec.evaluate.protocol import rank_targets

    out = tmp_path / "ingest"
    ingest(str(ml_small), IngestConfig(), str(out))
    ing = load_ingest(str(out))
    ids = np.unique(ing.items["item_id"].to_numpy())
    test = build_interactions(ing.events, ids, "test", None)
    for row, params in (("ease", {"lam": 100.0}), ("mostpop", {})):
        model = registered()[row](**params).fit(test)
        one = rank_targets(model, test, 20, 128)
        sharded = rank_sharded(model, test, 20, 128, shards=3)
        np.testing.assert_array_equal(one.users, sharded.users)
        np.testing.assert_array_equal(one.rank, sharded.rank)
        np.testing.assert_array_equal(one.topk, sharded.topk)
        assert one.skipped_users == sharded.skipped_users


def test_cold_protocol_fits_through_the_runner_equal_the_local_ones(ray_local, small_out, tmp_path):
    from interestrec.data import load_ingest
    from interestrec.evaluate.cold_protocol import choose_cold_alpha, cold_setup, judge_cold_items
    from interestrec.evaluate.config import EvaluateConfig
    from interestrec.evaluate.data import build_interactions
    from interestrec.evaluate.rows import runner

    ing = load_ingest(str(small_out / "ingest"))
    ids = np.unique(ing.items["item_id"].to_numpy())
    valid, test = (build_interactions(ing.events, ids, p, str(small_out)) for p in ("valid", "test"))
    setup = cold_setup(valid, test, 0.3, 1, log=lambda *_: None)
    params = {"weights": (0.0, 0.0, 0.1, 1.0), "seq_half_life": 5.0}
    rows = runner(EvaluateConfig(workers=2), str(tmp_path / "tune"), log=lambda *_: None)
    kw = dict(n_resamples=100, log=lambda *_: None)
    assert choose_cold_alpha(setup.valid, params, (0.0, 1.0), run=rows.run, **kw) == \
        choose_cold_alpha(setup.valid, params, (0.0, 1.0), **kw)
    main = {"fused": {"params": params, "ndcg@10": 0.2}, "ease": {"params": {"lam": 50.0}, "ndcg@10": 0.1}}
    got, got_ranks = judge_cold_items(setup, main, ("fused", "ease"), ablations=False, run=rows.run, **kw)
    ref, ref_ranks = judge_cold_items(setup, main, ("fused", "ease"), ablations=False, **kw)
    strip = lambda s: {n: {k: v for k, v in m.items() if k != "seconds"} for n, m in s["models"].items()}  # noqa: E731
    assert strip(got) == strip(ref) and got["fused_vs"] == ref["fused_vs"]
    for name in ref_ranks:
        np.testing.assert_array_equal(got_ranks[name].rank, ref_ranks[name].rank)


def test_executor_settings_are_validated():
    from interestrec.configcheck import ConfigError
    from interestrec.evaluate.config import EvaluateConfig

    for bad in ({"executor": "threads"}, {"workers": -1}, {"cpus_per_trial": 0}, {"early_stop_reduction": 1}):
        with pytest.raises(ConfigError, match="evaluate."):
            EvaluateConfig(**bad)
    assert dataclasses.replace(EvaluateConfig(), executor="local").executor == "local"
