"""The Serve ingress settings (:mod:`interestrec.serving.ingress`): what they set, what wins, and that the
shipped cluster config and Makefile start Ray with the same ones. Serve behind them: ``tests/test_serve*.py``
(the session's Ray starts with them)."""

import shlex
from pathlib import Path

import pytest

from interestrec.serving.ingress import ingress_env, main, use_ingress

ROOT = Path(__file__).resolve().parents[1]


def test_haproxy_is_the_default_and_retries_a_request_whose_replica_died():
    env: dict[str, str] = {}
    assert use_ingress(environ=env) == "haproxy"
    assert env["RAY_SERVE_ENABLE_HA_PROXY"] == "1"
    assert "empty-response" in env["RAY_SERVE_HAPROXY_RETRY_ON"].split()  # a connection closed with no answer
    assert int(env["RAY_SERVE_HAPROXY_RETRIES"]) >= 1


def test_the_environment_wins_and_the_proxy_can_be_chosen():
    env = {"RAY_SERVE_HAPROXY_RETRIES": "5"}
    assert use_ingress(environ=env) == "haproxy" and env["RAY_SERVE_HAPROXY_RETRIES"] == "5"
    env = {"INTERESTREC_INGRESS": "proxy"}
    assert use_ingress(environ=env) == "proxy" and env["RAY_SERVE_ENABLE_HA_PROXY"] == "0"
    env = {"RAY_SERVE_ENABLE_HA_PROXY": "0"}  # an operator's own setting
    assert use_ingress(environ=env) == "proxy"
    with pytest.raises(ValueError, match="ingress must be one of"):
        use_ingress("nginx", environ={})


def test_export_lines_round_trip_through_a_shell(capsys):
    assert main([]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    parsed = dict(shlex.split(line.removeprefix("export "))[0].split("=", 1) for line in lines)
    assert parsed == ingress_env()


def test_cluster_yaml_and_make_serve_start_ray_with_the_same_settings():
    text = (ROOT / "cluster.yaml").read_text()
    for cmd in ("head_start_ray_commands", "worker_start_ray_commands"):
        block = text.split(cmd + ":", 1)[1].split("ray start", 1)[0]
        for key, value in ingress_env().items():
            assert f"{key}={shlex.quote(value) if ' ' in value else value}".replace("'", '"') in block, (cmd, key)
    assert "python -m interestrec.serving.ingress $(BIN)/serve run serving/config.yaml" in (ROOT / "Makefile").read_text()
