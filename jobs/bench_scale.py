"""Scale run: synthetic users × events through the pipeline's own stages, with per-stage time and memory.

    python jobs/bench_scale.py --users 5000 --events-per-user 20        # small (the slow test's size)
    python jobs/bench_scale.py --users 100000 --events-per-user 50      # the recorded run

Generates a seeded synthetic log (``interestrec.data.synthetic``: items in planted topics, per-user drifting
interests) into a scratch directory, then runs ``ingest → encode → cluster → dynamics`` exactly as
``jobs/pipeline.py`` does (``pipeline.load_config`` + ``pipeline.init_ray`` + ``run_stage`` per stage, the
``synthetic`` ingest format, the language model encoding every item text, pool-mode user vectors and
interests, distributed k-means, dynamics over the windows). Nothing is re-implemented here. ``--evaluate``
adds the evaluate stage (Ray Tune trials for the rows' grids, refits and ranking as Ray tasks) for the rows
that fit at scale (``--eval-rows``, default MostPop, ItemKNN, EASE^R, the ``llm`` content row and fused,
with the cold-item protocol); the graph and publish stages are left out.

A sampler thread (``_bench.RssSampler``) reads every 0.2 s the RSS of this process (the driver) and of every
Ray worker process (``ray::…``: tasks, actors) under it; the table gives each stage's wall time and both
peaks. The last line is
``users=<n> events=<m> seconds=<s> driver_peak_rss_gib=<g> worker_peak_rss_gib=<w>`` (``events`` = rows the
generator wrote, ``seconds`` = the stages run, generation excluded; the peaks are over those stages).
No stage holds the log in the driver: the ingest shuffles by user in tasks, encode pools each ingest
partition in its own task, and dynamics counts per partition and clusters from the files.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import _bench

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
    p.add_argument("--evaluate", action="store_true", help="also run the evaluate stage (rows: --eval-rows)")
    p.add_argument("--eval-rows", default="mostpop,itemknn,ease,llm,fused", help="evaluate.models with --evaluate")
    return p.parse_args(argv)


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
    from interestrec import artifacts, layout

    return artifacts.read_json(artifacts.join(out, stage, layout.SUMMARY))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    stages = (*STAGES, "evaluate") if args.evaluate else STAGES
    from interestrec import cli as pipeline
    from interestrec.stages import StageContext, StageError, run_stage

    scratch = tempfile.mkdtemp(prefix="interestrec-scale-")
    raw = args.raw or os.path.join(scratch, "raw")
    out = args.out or os.path.join(scratch, "out")
    _bench.how_it_ran(f"{args.users:,} users x {args.events_per_user} events, {args.items:,} items; one run in this "
                      "process, the stages as jobs/pipeline.py runs them; RSS of the driver and of each ray:: "
                      "process sampled every 0.2 s")
    mem = _bench.RssSampler(workers=True).start()
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
        if args.evaluate:
            cfg = pipeline.load_config(args.config, [
                "ingest.format=synthetic", f"ingest.n_windows={args.windows}", "encode.user_mode=pool",
                "encode.also_text=false", f"cluster.k={args.k}", "cluster.alternatives=[]", "dynamics.plots=false",
                f"evaluate.models=[{args.eval_rows}]", *args.set])
        pipeline.init_ray(False)
        ctx = StageContext(out=out, config=cfg, data=raw)
        seconds: dict[str, float] = {}
        for name in stages:
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
        ev = pipeline_summary(out, "evaluate") if args.evaluate else None
    finally:
        if not args.keep:
            shutil.rmtree(scratch, ignore_errors=True)
    total = sum(seconds.values())
    seconds["generate"] = gen_s
    _bench.print_table(["stage", "seconds", "s / M events", "driver peak RSS GiB", "largest worker RSS GiB"],
                       [[name, f"{seconds[name]:.1f}", f"{seconds[name] / events * 1e6:.1f}",
                         f"{mem.own.get(name, 0) / GIB:.2f}", f"{mem.worker.get(name, 0) / GIB:.2f}"]
                        for name in ("generate", *stages)])
    if ev is not None:
        print("evaluate rows: " + ", ".join(f"{n} NDCG@10 {m['ndcg@10']:.4f} ({m['seconds']:.0f} s)"
                                            for n, m in ev["models"].items()) + f"; skipped: {ev['skipped'] or 'none'}")
    driver = max(mem.own.get(s, 0) for s in stages) / GIB
    worker = max(mem.worker.get(s, 0) for s in stages) / GIB
    _bench.last_line({"users": args.users, "events": events, "seconds": f"{total:.1f}",
                      "driver_peak_rss_gib": f"{driver:.2f}", "worker_peak_rss_gib": f"{worker:.2f}"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
