"""cluster.yaml and configs/*.yaml are valid against Ray's and our own schemas."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def test_cluster_yaml_validates_against_ray_schema():
    import jsonschema
    import ray.autoscaler

    schema = json.loads((Path(ray.autoscaler.__file__).parent / "ray-schema.json").read_text())
    cfg = yaml.safe_load((ROOT / "cluster.yaml").read_text())
    jsonschema.validate(cfg, schema)
    types = cfg["available_node_types"]
    assert cfg["head_node_type"] in types
    assert {"cpu_worker", "gpu_worker"} <= set(types)
    for name in ("cpu_worker", "gpu_worker"):
        assert types[name]["min_workers"] <= types[name]["max_workers"] <= cfg["max_workers"]
    assert any("pip install" in c and "interestrec" in c for c in cfg["setup_commands"])


def test_cluster_yaml_schema_rejects_a_broken_copy():
    import jsonschema
    import ray.autoscaler

    schema = json.loads((Path(ray.autoscaler.__file__).parent / "ray-schema.json").read_text())
    cfg = yaml.safe_load((ROOT / "cluster.yaml").read_text())
    cfg["available_node_types"]["cpu_worker"]["min_workers"] = "two"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(cfg, schema)


@pytest.mark.parametrize("path", sorted((ROOT / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_pipeline_configs_load(path):
    from interestrec.config import PipelineConfig, from_mapping

    cfg = from_mapping(PipelineConfig, yaml.safe_load(path.read_text()) or {})
    assert isinstance(cfg, PipelineConfig)


def test_unknown_config_key_is_named():
    from interestrec.config import ConfigError, PipelineConfig, from_mapping

    with pytest.raises(ConfigError, match="num_actorz"):
        from_mapping(PipelineConfig, {"cluster": {"num_actorz": 3}})
