"""jobs/_bench.py, the benchmark jobs' harness: round order, medians, the output format, fresh-process
children (results, peak RSS, failures), and a scan that keeps every ``jobs/bench_*.py`` on it. No Ray."""

from __future__ import annotations

import importlib.util
import math
import re
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MB = 1024**2


def load_harness(name: str = "_bench"):
    """jobs/<name>.py as the module ``name`` (jobs/ is no package and stays off the test run's sys.path)."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "jobs" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses resolve their module while the class is made
    spec.loader.exec_module(module)
    return module


_bench = load_harness()
_services = load_harness("_services")


def child_script(tmp_path: Path, body: str) -> str:
    """A tiny job whose ``--child`` run executes ``body`` (``variant`` and ``_bench`` in scope)."""
    path = tmp_path / "tiny_job.py"
    path.write_text(textwrap.dedent(f"""\
        import sys
        sys.path.insert(0, {str(ROOT / "jobs")!r})
        import _bench
        variant = sys.argv[sys.argv.index("--child") + 1]
    """) + textwrap.dedent(body))
    return str(path)


def test_schedule_alternates_the_order_every_round():
    assert _bench.schedule(["a", "b"], 4) == [(0, "a"), (0, "b"), (1, "b"), (1, "a"),
                                              (2, "a"), (2, "b"), (3, "b"), (3, "a")]
    assert [n for _, n in _bench.schedule(["x", "y", "z"], 2)] == ["x", "y", "z", "z", "y", "x"]
    assert [n for _, n in _bench.schedule(["a", "b"], 2, alternate=False)] == ["a", "b", "a", "b"]


def test_run_rounds_runs_in_alternating_order_and_keeps_round_order(capsys):
    calls: list[str] = []

    def variant(name: str):
        def run() -> dict:
            calls.append(name)
            return {"n": calls.count(name)}
        return run

    runs = _bench.run_rounds({"a": variant("a"), "b": variant("b")}, 3)
    assert calls == ["a", "b", "b", "a", "a", "b"]
    assert [r["n"] for r in runs["a"]] == [1, 2, 3] and [r["n"] for r in runs["b"]] == [1, 2, 3]
    assert all(r["wall_s"] >= 0 for rs in runs.values() for r in rs)
    assert capsys.readouterr().out.splitlines()[2].startswith("round 2/3 b: ")


def test_median():
    assert _bench.median([3.0, 1.0, 2.0]) == 2.0
    assert _bench.median([4.0, 1.0, 2.0, 3.0]) == 2.5
    assert math.isnan(_bench.median([]))


def test_tables_then_the_last_line_with_the_ratio_last(capsys):
    med = _bench.print_rounds("ms/iter", {"ours": [3.0, 1.0, 2.0], "faiss": [4.0, 6.0, 5.0]})
    assert med == {"ours": 2.0, "faiss": 5.0}
    line = _bench.last_line({"n": 1000, "ours_ms": f"{med['ours']:.1f}", "faiss_ms": 5.0},
                            ratio=("ours_over_faiss", med["faiss"] / med["ours"]))
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["ms/iter", "round", "1", "round", "2", "round", "3", "median"]
    assert out[1].split() == ["ours", "3.0", "1.0", "2.0", "2.0"]
    assert out[-1] == line == "n=1000 ours_ms=2.0 faiss_ms=5.000 ours_over_faiss=2.500"
    assert re.fullmatch(r"(\S+=\S+ )*ours_over_faiss=[\d.]+", out[-1])
    with pytest.raises(ValueError):
        _bench.last_line({"two words": 1})
    with pytest.raises(ValueError):
        _bench.last_line({"k": "two words"})


def test_a_fresh_child_returns_its_json_result(tmp_path):
    script = child_script(tmp_path, """
        import os
        print("some library chatter on stdout")
        _bench.emit({"variant": variant, "pid": os.getpid(), "args": sys.argv[1:-2]})
    """)
    res = _bench.run_child("ours", _bench.Child(script, ["--size", "3"]))
    assert res["variant"] == "ours" and res["args"] == ["--size", "3"]
    assert res["wall_s"] > 0 and res["peak_rss_bytes"] > 0
    other = _bench.run_rounds({"ours": _bench.Child(script), "anchor": _bench.Child(script)}, 2)
    pids = {r["pid"] for rs in other.values() for r in rs}
    assert len(pids) == 4 and res["pid"] not in pids  # every measurement its own process
    assert [r["variant"] for r in other["anchor"]] == ["anchor", "anchor"]


def test_the_rss_sampler_sees_a_child_that_allocates_200_mb(tmp_path):
    script = child_script(tmp_path, """
        import time
        block = b"x" * (200 * 1024 * 1024)  # written, so resident
        time.sleep(1.0)
        _bench.emit({"held": len(block)})
    """)
    res = _bench.run_child("alloc", _bench.Child(script))
    assert res["peak_rss_bytes"] >= 150 * MB, res


def test_the_sampler_of_this_process_keeps_peaks_per_phase():
    rss = _bench.RssSampler(interval_s=0.01).start()
    rss.phase = "load"
    rss.sample()
    rss.stop()
    assert rss.own["load"] > 10 * MB and rss.worker == {}


def test_a_failed_child_surfaces_its_stderr(tmp_path):
    script = child_script(tmp_path, """
        print("half a result", flush=True)
        sys.stderr.write("Traceback: the-real-reason\\n")
        sys.exit(3)
    """)
    with pytest.raises(_bench.ChildFailed, match=r"(?s)ours failed \(exit 3\).*the-real-reason.*half a result"):
        _bench.run_child("ours", _bench.Child(script))
    silent = child_script(tmp_path, "print('no result line here')\n")
    with pytest.raises(_bench.ChildFailed, match="no result line"):
        _bench.run_child("ours", _bench.Child(silent))
    slow = child_script(tmp_path, "import time\ntime.sleep(60)\n")
    with pytest.raises(_bench.ChildFailed, match="timed out"):
        _bench.run_child("ours", _bench.Child(slow, timeout_s=0.5))


def test_free_port_and_a_local_redis(tmp_path):
    assert 0 < _services.free_port() < 65536
    if _services.redis_server_path() is None:
        pytest.skip("no redis-server on PATH or next to this Python")
    import redis

    server = _services.start_redis(str(tmp_path))
    try:
        assert redis.Redis.from_url(server.url).ping()
    finally:
        server.stop()
    assert server.proc.returncode is not None


BENCHES = sorted((ROOT / "jobs").glob("bench_*.py"))
OWN = {"def free_port": "its own free_port", "ray.init(": "its own ray.init", "import psutil": "its own RSS sampler",
       "import subprocess": "its own process runner", "socket.socket(": "its own port picking"}


@pytest.mark.parametrize("path", BENCHES, ids=lambda p: p.name)
def test_every_benchmark_job_uses_the_harness(path):
    """The duplication the harness replaced stays out: each job imports it and re-implements none of it."""
    src = path.read_text()
    assert re.search(r"^import _bench$", src, re.M), f"{path.name} does not import _bench"
    assert "_bench." in src
    found = [why for needle, why in OWN.items() if needle in src]
    assert not found, f"{path.name} has {', '.join(found)}: use jobs/_bench.py"


def test_the_scan_sees_every_benchmark():
    assert len(BENCHES) >= 10
