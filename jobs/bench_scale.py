"""Scale run: synthetic users × events through the pipeline's own stages, with per-stage time and memory.

    python jobs/bench_scale.py --users 5000 --events-per-user 20        # small (the slow test's size)
    python jobs/bench_scale.py --users 100000 --events-per-user 50      # the recorded run

Generates a seeded synthetic log (``interestrec.data.synthetic``: items in planted topics, per-user drifting
interests) into a scratch directory, then runs ``ingest → encode → cluster → dynamics`` exactly as
``jobs/pipeline.py`` does (``pipeline.load_config`` + ``pipeline.init_ray`` + ``run_stage`` per stage, the
``synthetic`` ingest format, the language model encoding every item text, pool-mode user vectors and
interests, distributed k-means, dynamics over the windows). Nothing is re-implemented here; the graph,
evaluation and publish stages are left out.

A sampler thread reads every 0.2 s the RSS of this process (the driver) and of every Ray worker process
(``ray::…``: tasks, actors) under it; the table gives each stage's wall time and both peaks. The last line is
``users=<n> events=<m> seconds=<s> driver_peak_rss_gib=<g> worker_peak_rss_gib=<w>`` (``events`` = rows the
generator wrote, ``seconds`` = the four stages, generation excluded; the peaks are over the four stages).
No stage holds the log in the driver: the ingest shuffles by user in tasks, encode pools each ingest
partition in its own task, and dynamics counts per partition and clusters from the files.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STAGES = ("ingest", "encode", "cluster", "dynamics")
GIB = 1024**3


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--users", type=int, default=100_000)
    p.add_argument("--events-per-user", type=int, default=50, help="mean events per user")
    p.add_argument("--items", type=int, default=2_000, help="catalog size (every item text goes through the model)")
    p.add_argument("--topics", type=int, default=32, help="planted interest topics")
    p.add_argument("--windows", type=int, default=4)
    p.add_argument("--k", type=int, default=32, help="k-means clusters")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="pipeline output (default: a scratch dir, removed unless --keep)")
    p.add_argument("--config", default=str(ROOT / "configs/default.yaml"))
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="extra config overrides")
    p.add_argument("--keep", action="store_true", help="keep the scratch data and output")
    p.add_argument("--raw", default=None, help="synthetic log directory to reuse (generated there when absent; kept)")
    return p.parse_args(argv)


class MemorySampler:
    """Peak RSS of the driver and of the largest Ray worker process, per named phase."""

    def __init__(self, interval: float = 0.2) -> None:
        import psutil

        self.me = psutil.Process()
        self.interval = interval
        self.phase = ""
        self.driver: dict[str, int] = {}
        self.worker: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _workers(self) -> int:
        import psutil

        top = 0
        for p in self.me.children(recursive=True):
            try:
                if p.name().startswith("ray::") or any(a.startswith("ray::") for a in p.cmdline()[:1]):
                    top = max(top, p.memory_info().rss)
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
        return top

    def sample(self) -> None:
        ph = self.phase
        self.driver[ph] = max(self.driver.get(ph, 0), self.me.memory_info().rss)
        self.worker[ph] = max(self.worker.get(ph, 0), self._workers())

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()


def generate_log(args, raw: str) -> int:
    """Write the synthetic shards (and items) to ``raw`` unless they are there; returns the number of events."""
    from interestrec.data.synthetic import generate, write_shards

    if os.path.exists(os.path.join(raw, "items.parquet")):
        import pyarrow.parquet as pq

        return sum(pq.ParquetFile(os.path.join(raw, f)).metadata.num_rows for f in os.listdir(raw) if f.startswith("events-"))
    data = generate(args.users, args.items, args.topics, args.windows, args.events_per_user, seed=args.seed)
    write_shards(data, raw)
    return int(data.events.num_rows)


def pipeline_summary(out: str, stage: str) -> dict:
    from interestrec import artifacts

    return artifacts.read_json(artifacts.join(out, stage, "summary.json"))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from interestrec import cli as pipeline
    from interestrec.stages import StageContext, StageError, run_stage

    scratch = tempfile.mkdtemp(prefix="interestrec-scale-")
    raw = args.raw or os.path.join(scratch, "raw")
    out = args.out or os.path.join(scratch, "out")
    mem = MemorySampler()
    mem.start()
    try:
        mem.phase = "generate"
        t0 = time.perf_counter()
        events = generate_log(args, raw)
        gen_s = time.perf_counter() - t0
        print(f"generated {events:,} events for {args.users:,} users, {args.items:,} items in {gen_s:.1f}s", flush=True)
        cfg = pipeline.load_config(args.config, [
            "ingest.format=synthetic", f"ingest.n_windows={args.windows}",
            "encode.user_mode=pool", "encode.also_text=false",
            f"cluster.k={args.k}", "cluster.alternatives=[]", "dynamics.plots=false", *args.set])
        pipeline.init_ray(False)
        ctx = StageContext(out=out, config=cfg, data=raw)
        seconds: dict[str, float] = {}
        for name in STAGES:
            mem.phase = name
            t = time.perf_counter()
            try:
                run_stage(ctx, name, force=True)
            except StageError as e:
                print(f"stage '{name}' failed: {e}", file=sys.stderr)
                return 1
            seconds[name] = time.perf_counter() - t
            if name == "ingest":
                summary = pipeline_summary(out, name)
                print(f"ingest: {summary.get('partitions')} partitions, phases {summary.get('phase_seconds')}", flush=True)
        mem.stop()
    finally:
        if not args.keep:
            shutil.rmtree(scratch, ignore_errors=True)
    total = sum(seconds.values())
    print(f"{'stage':<10}{'seconds':>9}{'s / M events':>14}{'driver peak RSS GiB':>21}{'largest worker RSS GiB':>24}")
    for name in ("generate", *STAGES):
        s = gen_s if name == "generate" else seconds[name]
        cols = f"{s:9.1f}{s / events * 1e6:14.1f}"
        print(f"{name:<10}{cols}{mem.driver.get(name, 0) / GIB:21.2f}{mem.worker.get(name, 0) / GIB:24.2f}")
    driver = max(mem.driver.get(s, 0) for s in STAGES) / GIB
    worker = max(mem.worker.get(s, 0) for s in STAGES) / GIB
    print(f"users={args.users} events={events} seconds={total:.1f} driver_peak_rss_gib={driver:.2f} "
          f"worker_peak_rss_gib={worker:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
