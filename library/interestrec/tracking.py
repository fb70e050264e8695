"""Experiment tracking with MLflow (optional extra ``interestrec[tracking]``, off by default).

With ``tracking.mlflow: true`` a pipeline run is logged as one MLflow run (:func:`log_pipeline_run`: the
config as params, each stage's seconds and the evaluate table as metrics, the report and the evaluate
summary as artifacts), and the evaluate stage's Ray Tune trials go to a ``<experiment>-trials`` experiment
through Ray's own integration (:func:`tune_callbacks`, ``ray.air.integrations.mlflow.MLflowLoggerCallback``).
``tracking.mlflow_uri`` names the tracking server or store; unset, it is a local ``file:`` store under the
run's output (``<out>/mlruns``), which MLflow 3 keeps only when ``MLFLOW_ALLOW_FILE_STORE`` is set — it is
set for that default store only.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from interestrec import artifacts
from interestrec.configcheck import check_config

MLRUNS = "mlruns"


@dataclass(frozen=True)
class TrackingConfig:
    """Attributes:
    mlflow: log runs and trials to MLflow (needs the ``tracking`` extra).
    mlflow_uri: the tracking URI (``http://…``, ``sqlite:///…``, ``file:…``); ``None`` = ``file:<out>/mlruns``.
    experiment: the MLflow experiment of pipeline runs (trials: ``<experiment>-trials``).
    """

    mlflow: bool = False
    mlflow_uri: str | None = None
    experiment: str = "interestrec"

    def __post_init__(self) -> None:
        check_config(self, "tracking")
        if not self.experiment:
            raise ValueError("tracking.experiment must not be empty")


def tracking_uri(cfg: TrackingConfig, out: str) -> str | None:
    """The tracking URI of a run writing to ``out`` (``None`` when tracking is off).

    Raises:
        ValueError: the default local store was asked for but the output is not local.
    """
    if not cfg.mlflow:
        return None
    if cfg.mlflow_uri:
        return cfg.mlflow_uri
    if not artifacts.is_local(out):
        raise ValueError(f"tracking.mlflow_uri is unset and the output {out} is not local: set tracking.mlflow_uri "
                         "to a tracking server every node reaches")
    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow's own opt-in for its file store
    return "file:" + os.path.join(os.path.abspath(out), MLRUNS)


def _mlflow():
    try:
        import mlflow
    except ImportError as e:
        raise ImportError("tracking.mlflow needs MLflow: pip install 'interestrec[tracking]'") from e
    return mlflow


def tune_callbacks(cfg: TrackingConfig, out: str) -> list:
    """Ray Tune callbacks logging every trial to ``<experiment>-trials`` (``[]`` when tracking is off)."""
    uri = tracking_uri(cfg, out)
    if uri is None:
        return []
    _mlflow()
    from ray.air.integrations.mlflow import MLflowLoggerCallback

    return [MLflowLoggerCallback(tracking_uri=uri, experiment_name=f"{cfg.experiment}-trials")]


def metric_key(name: str) -> str:
    """``name`` with the characters MLflow refuses in metric names replaced (``ndcg@10`` → ``ndcg_at_10``)."""
    return "".join(c if c.isalnum() or c in "_-. /" else "_" for c in name.replace("@", "_at_"))


def flat_params(obj: object, prefix: str = "") -> dict[str, str]:
    """A nested mapping / dataclass as ``{"section.key": "value"}`` (MLflow params are flat strings)."""
    import dataclasses

    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        obj = {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
    if isinstance(obj, Mapping):
        out: dict[str, str] = {}
        for k, v in obj.items():
            out.update(flat_params(v, f"{prefix}{k}."))
        return out
    return {prefix.rstrip("."): str(obj)[:6000]}


def log_pipeline_run(cfg: TrackingConfig, out: str, config: object, summaries: Mapping[str, Mapping],
                     seconds: Mapping[str, float], report: str | None = None) -> str | None:
    """Log one pipeline run to MLflow; returns its run id (``None`` when tracking is off).

    Args:
        config: the :class:`~interestrec.config.PipelineConfig` (its fields become params).
        summaries: stage name → summary; ``evaluate``'s table becomes ``<row>.<metric>`` metrics.
        seconds: stage name → seconds (``seconds.<stage>`` metrics).
        report: the HTML report to attach.
    """
    uri = tracking_uri(cfg, out)
    if uri is None:
        return None
    mlflow = _mlflow()
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment(cfg.experiment)
    metrics = {metric_key(f"seconds.{s}"): float(v) for s, v in seconds.items()}
    table = (summaries.get("evaluate") or {}).get("models") or {}
    for row, m in table.items():
        metrics.update({metric_key(f"{row}.{k}"): float(v) for k, v in m.items()
                        if isinstance(v, int | float) and not isinstance(v, bool) and k != "seconds"})
    with mlflow.start_run(run_name=os.path.basename(os.path.normpath(out))) as run:
        params = flat_params(config)
        keys = sorted(params)
        for lo in range(0, len(keys), 100):  # MLflow takes at most 100 params per call
            mlflow.log_params({k: params[k] for k in keys[lo:lo + 100]})
        mlflow.log_metrics(metrics)
        mlflow.set_tags({"output": out, "stages": ",".join(summaries)})
        if "evaluate" in summaries:
            mlflow.log_dict(dict(summaries["evaluate"]), "evaluate/summary.json")
        if report and os.path.exists(report):
            mlflow.log_artifact(report)
        return run.info.run_id


__all__ = ["TrackingConfig", "flat_params", "log_pipeline_run", "metric_key", "tracking_uri", "tune_callbacks"]
