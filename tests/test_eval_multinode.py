"""The evaluate stage submitted to a two-node cluster (`ray start` head + worker, token auth): its Ray Tune
trials land on both nodes and the table equals the one-process reference's."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fixtures.artifacts import make_artifacts
from fixtures.cluster import LocalCluster

pytestmark = [pytest.mark.slow, pytest.mark.multinode, pytest.mark.cluster_ops]

SETTINGS = {"models": ["mostpop", "itemknn", "lightgcn", "fused"], "cold_item_share": 0.0, "bootstrap_resamples": 100,
            "early_stop": False, "grids": {"itemknn": [{"k": 10}, {"k": 20}, {"k": 40}],
                                           "lightgcn": [{"dim": 16}, {"dim": 24}, {"dim": 32}, {"dim": 48}]},
            "params": {"lightgcn": {"epochs": 150}}}  # trials long enough for Tune to start an actor per CPU

JOB = '''
import json, sys
import ray
from interestrec.config import PipelineConfig
from interestrec.evaluate.config import EvaluateConfig
from interestrec.evaluate.stage import run
from interestrec.stages import StageContext

ray.init()
settings = json.loads(open(sys.argv[2]).read())
settings["models"] = tuple(settings["models"])
summary = run(StageContext(out=sys.argv[1], config=PipelineConfig(evaluate=EvaluateConfig(**settings))))
open(sys.argv[3], "w").write(json.dumps(summary, default=str))
'''


def _table(summary: dict) -> dict:
    return {n: {k: v for k, v in m.items() if k not in ("seconds", "tuning")} for n, m in summary["models"].items()}


def test_trials_land_on_both_nodes_and_the_table_equals_one_process(tmp_path):
    from interestrec.config import PipelineConfig
    from interestrec.evaluate.config import EvaluateConfig
    from interestrec.evaluate.stage import run
    from interestrec.stages import StageContext

    ref_out = make_artifacts(tmp_path / "ref", d=32, graph=False)
    out = make_artifacts(tmp_path / "cluster-out", d=32, graph=False)
    ref = run(StageContext(out=str(ref_out), config=PipelineConfig(evaluate=EvaluateConfig(
        **{**SETTINGS, "models": tuple(SETTINGS["models"]), "executor": "local"}))))
    (tmp_path / "job.py").write_text(JOB)
    (tmp_path / "settings.json").write_text(json.dumps({**SETTINGS, "executor": "ray", "workers": 3}))
    cluster = LocalCluster(tmp_path, head_cpus=1)
    try:
        cluster.add_worker(cpus=2, resources={"worker_node": 1})
        r = cluster.submit("python", str(tmp_path / "job.py"), str(out), str(tmp_path / "settings.json"),
                           str(tmp_path / "summary.json"))
        assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-4000:]
    finally:
        cluster.stop()
    got = json.loads((tmp_path / "summary.json").read_text())
    assert _table(got) == json.loads(json.dumps(_table(ref), default=str))
    trials = json.loads((Path(out) / "evaluate" / "tune" / "trials.json").read_text())
    trial_nodes = {t["node"] for records in trials.values() for t in records}
    assert len(trial_nodes) == 2, trials  # the head's CPU and the worker node's
