"""Experiment tracking: a run's config, stage seconds and quality table in MLflow, every Tune trial through
Ray's MLflow integration; nothing at all when tracking is off."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from fixtures.artifacts import make_artifacts

pytest.importorskip("mlflow")


@pytest.fixture(scope="module")
def small_out(tmp_path_factory) -> Path:
    return make_artifacts(tmp_path_factory.mktemp("tracking") / "out", d=32, graph=False)


def _config(**tracking):
    from interestrec.config import PipelineConfig
    from interestrec.evaluate.config import EvaluateConfig
    from interestrec.tracking import TrackingConfig

    ev = EvaluateConfig(models=("mostpop", "itemknn", "fused"), cold_item_share=0.0, bootstrap_resamples=100,
                        ablations=False, grids={"itemknn": ({"k": 10}, {"k": 40})}, workers=2)
    return PipelineConfig(evaluate=ev, tracking=TrackingConfig(**tracking))


def test_a_run_and_its_trials_are_logged_to_mlflow(ray_local, small_out, tmp_path):
    import mlflow

    from interestrec.evaluate.stage import run
    from interestrec.stages import StageContext
    from interestrec.tracking import log_pipeline_run, tracking_uri

    out = tmp_path / "out"
    shutil.copytree(small_out, out)
    cfg = _config(mlflow=True, experiment="exp")
    summary = run(StageContext(out=str(out), config=cfg))
    (out / "report.html").write_text("<html>report</html>")
    run_id = log_pipeline_run(cfg.tracking, str(out), cfg, {"evaluate": summary}, {"evaluate": 12.5},
                              str(out / "report.html"))
    uri = tracking_uri(cfg.tracking, str(out))
    assert uri == f"file:{out / 'mlruns'}"
    client = mlflow.tracking.MlflowClient(tracking_uri=uri)
    logged = client.get_run(run_id).data
    assert logged.params["evaluate.executor"] == "ray" and logged.params["seed"] == "0"
    assert logged.metrics["seconds.evaluate"] == 12.5
    for row in ("mostpop", "itemknn", "fused"):
        assert logged.metrics[f"{row}.ndcg_at_10"] == pytest.approx(summary["models"][row]["ndcg@10"])
    files = {f.path for f in client.list_artifacts(run_id, "evaluate")} | {f.path for f in client.list_artifacts(run_id)}
    assert "evaluate/summary.json" in files and "report.html" in files
    trials_exp = client.get_experiment_by_name("exp-trials")
    trials = client.search_runs([trials_exp.experiment_id])
    n_points = sum(len(m["tuning"]) for m in summary["models"].values())
    assert len(trials) == n_points > 2
    assert all("valid_ndcg_at_10" in t.data.metrics for t in trials)
    scores = sorted(t.data.metrics["valid_ndcg_at_10"] for t in trials)
    assert scores == pytest.approx(sorted(t["valid_ndcg@10"] for m in summary["models"].values() for t in m["tuning"]),
                                   abs=1e-5)


def test_tracking_off_logs_nothing(ray_local, small_out, tmp_path):
    from interestrec.evaluate.stage import run
    from interestrec.stages import StageContext
    from interestrec.tracking import log_pipeline_run

    out = tmp_path / "out"
    shutil.copytree(small_out, out)
    cfg = _config()
    summary = run(StageContext(out=str(out), config=cfg))
    assert log_pipeline_run(cfg.tracking, str(out), cfg, {"evaluate": summary}, {}) is None
    assert not (out / "mlruns").exists()


def test_keys_and_params_are_what_mlflow_takes():
    from interestrec.tracking import TrackingConfig, flat_params, metric_key, tracking_uri

    assert metric_key("fused-no_llm.ndcg@10") == "fused-no_llm.ndcg_at_10"
    assert metric_key("a:b(c)") == "a_b_c_"
    cfg = _config()
    params = flat_params(cfg)
    assert params["evaluate.workers"] == "2" and params["tracking.mlflow"] == "False"
    assert json.loads(params["evaluate.ks"].replace("(", "[").replace(")", "]")) == [10, 20]
    with pytest.raises(ValueError, match="tracking.mlflow_uri is unset and the output s3://b/run is not local"):
        tracking_uri(TrackingConfig(mlflow=True), "s3://b/run")
    assert tracking_uri(TrackingConfig(mlflow=True, mlflow_uri="http://127.0.0.1:5000"), "s3://b/run") == \
        "http://127.0.0.1:5000"
