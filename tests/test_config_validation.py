"""Every config dataclass checks the types and ranges of its fields and names the field it rejects."""

from __future__ import annotations

import ast
import dataclasses
import importlib
import sys
from pathlib import Path

import pytest

from interestrec.adapt.config import AdaptConfig
from interestrec.cluster.config import ClusterConfig
from interestrec.config import PipelineConfig, from_mapping, replace_path
from interestrec.configcheck import ConfigError
from interestrec.data.config import ColumnMapping, IngestConfig
from interestrec.dynamics.config import DynamicsConfig
from interestrec.encode.config import EncodeConfig
from interestrec.evaluate.config import EvaluateConfig
from interestrec.graph.config import GraphConfig
from interestrec.recommend.config import ServeConfig

ROOT = Path(__file__).resolve().parents[1]

BAD = [
    (EncodeConfig, {"batch_size": "abc"}, r"encode\.batch_size must be an int, got 'abc'"),
    (EncodeConfig, {"batch_size": 0}, r"encode\.batch_size must be ≥ 1"),
    (EncodeConfig, {"half_life_days": float("nan")}, r"encode\.half_life_days must be > 0"),
    (EncodeConfig, {"also_text": "yes"}, r"encode\.also_text must be a bool"),
    (EncodeConfig, {"user_mode": "llm"}, r"encode\.user_mode must be one of \['pool', 'text'\]"),
    (EncodeConfig, {"item_description_words": -1}, r"encode\.item_description_words must be ≥ 0"),
    (ClusterConfig, {"max_iter": 2.5}, r"cluster\.max_iter must be an int"),
    (ClusterConfig, {"num_actors": 0}, r"cluster\.num_actors must be ≥ 1"),
    (GraphConfig, {"lr": 0.0}, r"graph\.lr must be > 0"),
    (GraphConfig, {"fanout": (10, "x")}, r"graph\.fanout must be a list of int values"),
    (DynamicsConfig, {"decay": 1.5}, r"dynamics\.decay must be ≤ 1"),
    (DynamicsConfig, {"mode": "hot"}, r"dynamics\.mode must be one of"),
    (EvaluateConfig, {"ks": (0,)}, r"evaluate\.ks must be ≥ 1"),
    (EvaluateConfig, {"tune": 1}, r"evaluate\.tune must be a bool"),
    (IngestConfig, {"n_windows": "8"}, r"ingest\.n_windows must be an int"),
    (IngestConfig, {"window_mode": "daily"}, r"ingest\.window_mode must be one of"),
    (ColumnMapping, {"user_id": 3}, r"ingest\.columns\.user_id must be a string"),
    (AdaptConfig, {"temperature": -0.1}, r"adapt\.temperature must be > 0"),
    (AdaptConfig, {"lora_dropout": 2.0}, r"adapt\.lora_dropout must be ≤ 1"),
    (ServeConfig, {"port": 70000}, r"serve\.port must be ≤ 65535"),
    (ServeConfig, {"token": 5}, r"serve\.token must be a string, got 5"),
    (PipelineConfig, {"seed": -1}, r"pipeline\.seed must be ≥ 0"),
    (PipelineConfig, {"encode": {"batch_size": 4}}, r"pipeline\.encode must be a EncodeConfig"),
]


@pytest.mark.parametrize(("cls", "kwargs", "message"), BAD, ids=[f"{c.__name__}-{next(iter(k))}" for c, k, _ in BAD])
def test_a_bad_value_is_rejected_with_the_field_named(cls, kwargs, message):
    with pytest.raises(ConfigError, match=message):
        cls(**kwargs)


@pytest.mark.parametrize("cls", [EncodeConfig, ClusterConfig, GraphConfig, DynamicsConfig, EvaluateConfig, IngestConfig,
                                 ColumnMapping, AdaptConfig, ServeConfig, PipelineConfig])
def test_defaults_are_valid_and_numpy_numbers_are_numbers(cls):
    import numpy as np

    cfg = cls()
    ints = [f.name for f in dataclasses.fields(cfg) if type(getattr(cfg, f.name)) is int]
    if ints:  # a value computed with numpy (e.g. a chosen K) is still an int
        assert dataclasses.replace(cfg, **{ints[0]: np.int64(getattr(cfg, ints[0]))})


def test_a_cli_override_names_the_field():
    with pytest.raises(ConfigError, match=r"encode\.batch_size must be an int, got 'abc' \(str\)"):
        replace_path(PipelineConfig(), "encode.batch_size", "abc")
    assert replace_path(PipelineConfig(), "encode.batch_size", 32).encode.batch_size == 32
    with pytest.raises(ConfigError, match=r"cluster\.k_grid must hold integers ≥ 2"):  # a cross-field check, too
        replace_path(PipelineConfig(), "cluster.k_grid", (1, 2))
    with pytest.raises(ConfigError, match=r"graph\.epochs must be an int"):
        from_mapping(PipelineConfig, {"graph": {"epochs": "many"}})


def test_the_pipeline_job_stops_on_a_bad_override(tmp_path):
    sys.path.insert(0, str(ROOT / "jobs"))
    try:
        pipeline = importlib.import_module("pipeline")
    finally:
        sys.path.remove(str(ROOT / "jobs"))
    with pytest.raises(ConfigError, match=r"encode\.batch_size"):
        pipeline.load_config(str(ROOT / "configs" / "default.yaml"), ["encode.batch_size=abc"])
    for name in ("default.yaml", "adapt-bench.yaml"):  # the shipped configs pass their own checks
        assert isinstance(pipeline.load_config(str(ROOT / "configs" / name), []), PipelineConfig)


def test_every_config_dataclass_in_the_library_checks_its_fields():
    """Any ``*Config`` / ``*Params`` dataclass of the package calls ``check_config`` in ``__post_init__``."""
    unchecked = []
    for path in sorted((ROOT / "library" / "interestrec").rglob("*.py")):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.ClassDef) and node.name.endswith(("Config", "Params")) and any(
                    "dataclass" in ast.unparse(d) for d in node.decorator_list):
                post = next((b for b in node.body if isinstance(b, ast.FunctionDef) and b.name == "__post_init__"), None)
                if post is None or "check_config" not in ast.unparse(post):
                    unchecked.append(f"{path.relative_to(ROOT)}:{node.name}")
    assert unchecked == []


def test_the_neural_rows_take_typed_params():
    from interestrec.evaluate.models.lightgcn import LightGCNParams, LightGCNRecommender
    from interestrec.evaluate.models.sasrec import SASRecParams, SASRecRecommender

    assert LightGCNRecommender(dim=32).cfg == LightGCNParams(dim=32)
    assert SASRecRecommender(dropout=0.5).cfg.dropout == 0.5 and SASRecRecommender().cfg == SASRecParams()
    with pytest.raises(ConfigError, match=r"lightgcn\.epochs must be an int"):
        LightGCNRecommender(epochs="10")
    with pytest.raises(ValueError, match="unknown parameters"):
        SASRecRecommender(hidden=64)
