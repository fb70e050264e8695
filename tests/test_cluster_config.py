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
    assert any("pip install" in c and "interestrec/pyproject.toml" in c for c in cfg["setup_commands"])


def _commands(cfg: dict) -> list[str]:
    keys = ("initialization_commands", "setup_commands", "head_setup_commands", "worker_setup_commands",
            "head_start_ray_commands", "worker_start_ray_commands")
    return [c for k in keys for c in cfg.get(k, [])]


def test_cluster_yaml_is_secure_and_fails_loudly():
    """Token auth on every node (token from the environment or a secret, never a literal), no hidden
    install failures, Ray's container image at the project's Ray version."""
    import re

    import ray

    cfg = yaml.safe_load((ROOT / "cluster.yaml").read_text())
    for cmd in _commands(cfg):
        assert "|| true" not in cmd and "; true" not in cmd, cmd
        if "pip install" in cmd:
            assert cmd.lstrip().startswith("set -euo pipefail"), cmd
    for key in ("head_start_ray_commands", "worker_start_ray_commands"):
        start = [c for c in cfg[key] if "ray start" in c]
        assert len(start) == 1
        assert "export RAY_AUTH_MODE=token" in start[0] and 'export RAY_AUTH_TOKEN="${RAY_AUTH_TOKEN:-' in start[0]
        assert "secretsmanager" in start[0] and 'test -n "$RAY_AUTH_TOKEN"' in start[0]
        assert start[0].index("RAY_AUTH_MODE=token") < start[0].index("ray start")
    assert not re.search(r"[0-9a-f]{32,}", (ROOT / "cluster.yaml").read_text()), "a token literal in cluster.yaml"
    version = ".".join(ray.__version__.split(".")[:2])
    images = [cfg["docker"]["image"]] + [t["docker"]["worker_image"] for t in cfg["available_node_types"].values()
                                         if "docker" in t]
    assert all(i.startswith(f"rayproject/ray:{version}.") for i in images), images
    assert any(i.endswith("-gpu") for i in images)


def test_cluster_yaml_installs_the_dependencies_from_pyproject(tmp_path):
    """The setup command's requirement list is the project's dependency list (the project itself comes with the job)."""
    import subprocess
    import sys

    import tomllib

    cfg = yaml.safe_load((ROOT / "cluster.yaml").read_text())
    cmd = next(c for c in cfg["setup_commands"] if "pyproject.toml" in c)
    extract = cmd.split("python -m pip install")[0].replace("/home/ray/interestrec", str(ROOT))
    extract = extract.replace("/tmp/interestrec-requirements.txt", str(tmp_path / "req.txt"))
    subprocess.run(["bash", "-c", extract.replace("python -c", f"{sys.executable} -c")], check=True)
    want = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert (tmp_path / "req.txt").read_text().split() == want


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
