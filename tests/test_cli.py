"""The ``interestrec`` command run as a user runs it (a subprocess of ``python -m interestrec.cli``), the
closing summary and the progress lines."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def cli(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}  # the embedded local Ray
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "library"), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return subprocess.run([sys.executable, "-m", "interestrec.cli", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT, env=env)


def test_help_lists_every_subcommand_with_examples():
    r = cli("--help")
    assert r.returncode == 0, r.stderr
    for command in ("run", "serve", "bench", "report", "export"):
        assert f"    {command} " in r.stdout
    run = cli("run", "--help")
    assert run.returncode == 0 and "--stages" in run.stdout and "--serve-check" in run.stdout
    assert "examples:" in run.stdout and "interestrec run --data" in run.stdout


def test_no_subcommand_is_a_usage_error():
    r = cli()
    assert r.returncode == 2 and "COMMAND" in r.stderr


@pytest.mark.parametrize(("args", "message"), [
    (["--set", "cluster.k=abc"], "cluster.k"),
    (["--set", "graph.epochs=0"], "graph.layers, epochs"),
    (["--set", "nosuchsection.x=1"], "unknown config key 'nosuchsection'"),
    (["--set", "cluster.k"], "KEY=VALUE"),
    (["--stages", "ingest,clustr"], "unknown stage(s) ['clustr']"),
    (["--config", "configs/nope.yaml"], "config file not found"),
])
def test_bad_options_fail_fast_with_a_clear_message_and_exit_code_2(tmp_path, args, message):
    r = cli("run", "--out", str(tmp_path / "out"), "--stages", "cluster", *args, timeout=120)
    assert r.returncode == 2, r.stdout + r.stderr
    assert message in r.stderr
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "out").exists()  # rejected before anything ran


def test_demo_profile_loads_and_narrows_the_grids():
    from interestrec.cli import load_config

    demo, full = load_config(str(ROOT / "configs/demo.yaml"), []), load_config(str(ROOT / "configs/default.yaml"), [])
    assert full.evaluate.grids == {} and full.evaluate.params == {}  # the benchmark keeps every row's own grid
    assert demo.evaluate.row_grid("sasrec", [{"dropout": 0.5}]) == [{"dropout": 0.2, "max_len": 200, "epochs": 5}]
    assert demo.evaluate.row_grid("mostpop", [{}]) == [{}]
    fused = demo.evaluate.row_grid("fused", [])
    assert fused[0]["weights"] == (0.0, 0.0, 0.0, 1.0)  # YAML lists become tuples, as the rows' own grids
    from interestrec.evaluate.base import REGISTRY
    from interestrec.evaluate.stage import load_models

    load_models()
    assert set(demo.evaluate.grids) | set(demo.evaluate.params) <= set(REGISTRY)
    assert set(demo.evaluate.models) <= set(REGISTRY)


def test_a_grid_that_is_not_a_list_of_mappings_is_rejected():
    from interestrec.cli import load_config
    from interestrec.config import ConfigError

    with pytest.raises(ConfigError, match="evaluate.grids.ease"):
        load_config(None, ["evaluate.grids={ease: {lam: 1.0}}"])


@pytest.mark.slow
def test_a_single_stage_runs_and_ends_with_the_summary_then_report_re_renders(tmp_path, ml_subset):
    out = tmp_path / "out"
    r = cli("run", "--data", str(ml_subset), "--out", str(out), "--stages", "ingest", "--quiet")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    ingest = json.loads((out / "ingest" / "summary.json").read_text())
    assert ingest["users"] == 40
    assert "== summary ==" in r.stdout
    line = next(x for x in r.stdout.splitlines() if x.startswith("ingest "))
    assert f"{ingest['users']} users, {ingest['items']} items, {ingest['accepted']} events" in line
    assert f"report: {out / 'report.html'}" in r.stdout and (out / "report.html").exists()
    assert '"rows_read"' not in r.stdout  # the stage's JSON stays in its file (--verbose prints it)

    again = cli("run", "--data", str(ml_subset), "--out", str(out), "--stages", "ingest", "--verbose")
    assert again.returncode == 0, again.stderr[-3000:]
    assert "ingest: unchanged inputs and config, skipped" in again.stdout
    assert "(unchanged, not re-run)" in again.stdout and '"rows_read"' in again.stdout

    (out / "report.html").unlink()
    rep = cli("report", "--out", str(out), timeout=120)
    assert rep.returncode == 0, rep.stderr[-3000:]
    assert (out / "report.html").exists() and "== summary ==" in rep.stdout and "40 users" in rep.stdout


def test_report_of_an_empty_directory_says_what_to_run(tmp_path):
    r = cli("report", "--out", str(tmp_path), timeout=120)
    assert r.returncode == 2 and "no stage summaries" in r.stderr


def test_the_job_entrypoint_is_the_run_command():
    r = subprocess.run([sys.executable, str(ROOT / "jobs/pipeline.py"), "--help"], capture_output=True, text=True,
                       cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT / "library")}, timeout=60)
    assert r.returncode == 0 and r.stdout.startswith("usage: interestrec run")


# --- the closing summary -------------------------------------------------------------------------------


def _evaluate_summary() -> dict:
    def row(ndcg, base, diff=None):
        m = {"ndcg@10": ndcg, "hr@10": 2 * ndcg, "baseline": base}
        if diff is not None:
            m["vs_best_baseline"] = {"diff": diff, "low": diff - 0.01, "high": diff + 0.01}
        return m

    models = {"ease": row(0.041, True), "mostpop": row(0.019, True, -0.022), "fused": row(0.064, False, 0.023)}
    models.update({f"r{i}": row(0.001 * i, False, 0.001 * i - 0.041) for i in range(8)})
    return {"models": models, "comparisons": {"best_baseline": "ease"}, "_run": {"seconds": 12.5}}


def test_summary_shows_stage_seconds_key_numbers_top_rows_serve_and_report():
    from interestrec.report.summary import run_summary

    summaries = {
        "ingest": {"users": 610, "items": 9742, "accepted": 104519, "rejected": 1, "_run": {"seconds": 9.5}},
        "cluster": {"k": 4, "silhouette": 0.2405, "sizes": [127, 131, 160, 192], "n_iter": 15, "_run": {"seconds": 30}},
        "evaluate": _evaluate_summary(),
    }
    serve = {"url": "http://127.0.0.1:1/recommend", "status": 200, "ms": 41.0, "user": 1, "version": "v1",
             "cluster": 2, "items": [5, 7]}
    text = run_summary(summaries, {"ingest": 9.6, "cluster": 30.1, "evaluate": 12.6}, {"ingest"}, 60.0, serve,
                       "/o/report.html")
    lines = text.splitlines()
    ingest = next(x for x in lines if x.startswith("ingest"))
    assert "9.6" in ingest and "610 users, 9742 items, 104519 events (1 rejected)" in ingest
    assert "(unchanged, not re-run)" in ingest
    assert "K = 4, silhouette 0.240" in next(x for x in lines if x.startswith("cluster"))
    assert next(x for x in lines if x.startswith("total")).split()[1] == "52.3"
    rows = [x.split()[0] for x in lines[lines.index("quality (test, full ranking, leave-last-out):") + 2:]
            if x.startswith("  ")]
    assert rows[:2] == ["fused", "ease"] and len(rows) == 5  # the top 5 by NDCG@10, best baseline among them
    assert "+0.0230 [+0.0130, +0.0330]" in text
    assert "→ 200 in 41 ms (version v1, cluster 2; user 1 → items 5, 7)" in text
    assert lines[-1] == "report: /o/report.html"


def test_summary_adds_the_best_baseline_when_it_is_below_the_top_rows():
    from interestrec.report.summary import quality_rows

    ev = _evaluate_summary()
    ev["models"].update({f"top{i}": {"ndcg@10": 0.1 + i, "hr@10": 0.2, "baseline": False} for i in range(5)})
    rows = quality_rows(ev, top=5)
    assert [r.split()[0] for r in rows[1:]] == ["top4", "top3", "top2", "top1", "top0", "ease"]
    assert rows[-1].endswith("(best baseline)")


def test_a_summary_in_an_unexpected_layout_is_named_not_fatal():
    from interestrec.report.summary import stage_line

    assert "not in the expected layout" in stage_line("adapt", {"objective": "projection", "projection": {"losses": ["x"]}})
    assert stage_line("graph", {"nodes": {"user": 2, "item": 3}, "epochs": 2, "final_loss": 0.5}).startswith("?, 5 nodes")
    assert stage_line("nosuchstage", {}) == ""


# --- progress lines ------------------------------------------------------------------------------------


class FakeClock:
    def __init__(self):
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_progress_prints_rate_and_eta_when_due_and_a_last_line():
    from interestrec import progress

    progress.set_level(progress.NORMAL)
    clock, out = FakeClock(), io.StringIO()
    bar = progress.Progress("sasrec: epoch", total=10, unit="epoch", every=5.0, stream=out, clock=clock)
    for _ in range(4):
        clock.t += 2.0
        bar.update(note="loss 1.0")
    lines = out.getvalue().splitlines()
    assert len(lines) == 1  # at t=6s: due once (every 5 s), not at 2 s or 4 s
    assert lines[0] == "[interestrec] sasrec: epoch 3/10 (30%) · 2.0 s/epoch · 6s elapsed · ETA 14s · loss 1.0"
    clock.t += 100
    bar.update(5)
    bar.close()
    assert out.getvalue().splitlines()[-1] == "[interestrec] sasrec: epoch 9/10 (90%) · 12.0 s/epoch · 1m48s elapsed · ETA 12s"
    assert len(out.getvalue().splitlines()) == 2  # close() does not repeat the line of the last count
    bar.update()  # not due (no time passed): close() prints the final count
    bar.close()
    assert out.getvalue().splitlines()[-1] == "[interestrec] sasrec: epoch 10/10 (100%) · 10.8 s/epoch · 1m48s elapsed · done"


def test_progress_is_silent_for_short_loops_and_when_quiet_and_every_step_when_verbose():
    from interestrec import progress

    clock, out = FakeClock(), io.StringIO()
    progress.set_level(progress.NORMAL)
    with progress.Progress("fast", total=3, stream=out, clock=clock) as bar:
        for _ in range(3):
            clock.t += 0.1
            bar.update()
    assert out.getvalue() == ""
    progress.set_level(progress.QUIET)
    bar = progress.Progress("slow", total=3, stream=out, clock=clock)
    clock.t += 60
    bar.update()
    bar.close()
    assert out.getvalue() == ""
    progress.set_level(progress.VERBOSE)
    bar = progress.Progress("each", total=None, unit="row", stream=out, clock=clock)
    bar.update(note="a")
    bar.update(note="b")
    assert [x.split(" · ")[-1] for x in out.getvalue().splitlines()] == ["a", "b"]
    assert "ETA" not in out.getvalue()  # no total, no ETA
    progress.set_level(progress.NORMAL)
    with pytest.raises(ValueError, match="0, 1 or 2"):
        progress.set_level(5)


def test_track_yields_every_item_unchanged():
    from interestrec import progress

    assert list(progress.track(iter([3, 1, 2]), "x")) == [3, 1, 2]
    assert list(progress.track(range(4), "y", every=0.0)) == [0, 1, 2, 3]


def _toy_train_loop(config: dict) -> None:
    import ray.train

    for epoch in range(config["epochs"]):
        ray.train.report({"epoch": epoch, "loss": 1.0 / (epoch + 1)})


@pytest.mark.slow
def test_ray_train_epoch_reports_reach_the_drivers_progress_lines(ray_local, tmp_path, capsys):
    import ray.cloudpickle
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from interestrec import progress

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    progress.set_level(progress.NORMAL)
    with progress.ray_train_epochs("toy: epoch", 3) as callbacks:
        assert len(callbacks) == 1
        run = RunConfig(name="toy", storage_path=str(tmp_path), callbacks=callbacks)
        TorchTrainer(_toy_train_loop, train_loop_config={"epochs": 3}, scaling_config=ScalingConfig(num_workers=1),
                     run_config=run).fit()
    lines = [x for x in capsys.readouterr().err.splitlines() if x.startswith("[interestrec] toy: epoch")]
    assert [x.split(" · ")[0] for x in lines] == [f"[interestrec] toy: epoch {i}/3 ({i / 3:.0%})" for i in (1, 2, 3)]
    assert lines[-1].endswith("loss 0.3333")
    progress.set_level(progress.QUIET)
    with progress.ray_train_epochs("toy: epoch", 3) as callbacks:
        assert callbacks == []
    progress.set_level(progress.NORMAL)
