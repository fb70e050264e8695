"""Ingest at scale: the distributed stage against the driver-side reference, side by side.

    python jobs/bench_ingest.py --users 100000 --events-per-user 50 --rounds 3
    python jobs/bench_ingest.py --users 1000000 --events-per-user 50 --rounds 1 --only distributed

Generates a seeded synthetic log once (``interestrec.data.synthetic``, kept under ``--raw`` so later runs reuse
it), then ingests it with ``interestrec.data.stage.ingest`` (distributed: shuffle by user, workers write) and
``interestrec.data.reference.ingest_in_driver`` (every event collected into the driver). Each run is its own
fresh process with its own local Ray (``--cpus``), the two alternate round by round (``_bench``), and the
tables give each round and the medians: wall seconds of the ingest call and the driver's peak RSS (the
child process, sampled every 0.2 s from outside; ``ru_maxrss`` would carry the RSS of the process that forked
it across ``exec``; Ray workers are separate processes). The log is generated in a process of its own for the
same reason. The last line is
``users=<n> events=<m> distributed_s=<s> reference_s=<s> speedup=<x> distributed_driver_gib=<g> reference_driver_gib=<g>``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import _bench
import _services

GIB = 1024**3
VARIANTS = {"distributed": ("interestrec.data.stage", "ingest"),
            "reference": ("interestrec.data.reference", "ingest_in_driver")}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--users", type=int, default=100_000)
    p.add_argument("--events-per-user", type=int, default=50)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--cpus", type=int, default=os.cpu_count() or 2)
    p.add_argument("--only", choices=sorted(VARIANTS), default=None, help="run one variant")
    p.add_argument("--raw", default=None, help="synthetic log directory (generated when absent; default under /tmp)")
    _bench.add_child_flag(p)  # internal: 'generate' or one variant's ingest of --raw, in this fresh process
    return p.parse_args(argv)


def child(args: argparse.Namespace) -> int:
    """``generate``: write the log to ``--raw``; a variant: ingest it once under a local Ray; emit the result."""
    if args.child == "generate":
        from interestrec.data.synthetic import generate, write_shards

        write_shards(generate(args.users, 2000, 32, 4, args.events_per_user, seed=0), args.raw)
        _bench.emit({})
        return 0
    import importlib

    from interestrec.data import IngestConfig

    module, fn = VARIANTS[args.child]
    _services.start_local_ray(args.cpus)
    ingest = getattr(importlib.import_module(module), fn)
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as out:
        t = time.perf_counter()
        s = ingest(args.raw, IngestConfig(format="synthetic", n_windows=4), out)
        secs = time.perf_counter() - t
    _bench.emit({"seconds": secs, "accepted": s["accepted"], "rows_read": s["rows_read"], "users": s["users"],
                 "phases": s.get("phase_seconds"), "phase_rss_mb": s.get("phase_driver_peak_rss_mb")})
    return 0


def generate(argv: list[str], users: int, raw: str) -> int:
    """The synthetic log under ``raw`` (written by a separate process when absent); its number of events."""
    import pyarrow.parquet as pq

    if not os.path.exists(os.path.join(raw, "items.parquet")):
        t = time.perf_counter()
        _bench.run_child("generate", _bench.Child(__file__, [*argv, "--raw", raw]))
        print(f"generated the log for {users:,} users in {time.perf_counter() - t:.1f}s", flush=True)
    return sum(pq.ParquetFile(os.path.join(raw, f)).metadata.num_rows for f in os.listdir(raw) if f.startswith("events-"))


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if args.child:
        return child(args)
    raw = args.raw or os.path.join(tempfile.gettempdir(), f"interestrec-synth-{args.users}x{args.events_per_user}")
    events = generate(argv, args.users, raw)
    variants = [args.only] if args.only else list(VARIANTS)
    _bench.how_it_ran(f"{args.users:,} users, {events:,} events; each ingest in its own fresh process with its own "
                      f"local Ray ({args.cpus} CPUs); " + _bench.rounds_text(variants, args.rounds))

    def progress(v: str, res: dict) -> str:
        if res["rows_read"] != events or res["accepted"] != events:
            raise SystemExit(f"{v}: read {res['rows_read']:,} / accepted {res['accepted']:,} of {events:,} events")
        phases = (f"\n    phases (s): {res['phases']}\n    driver peak after each (MB): {res['phase_rss_mb']}"
                  if res.get("phases") else "")
        return f"{res['seconds']:.1f}s, driver peak {res['peak_rss_bytes'] / GIB:.2f} GiB" + phases

    runs = _bench.run_rounds({v: _bench.Child(__file__, [*argv, "--raw", raw]) for v in variants}, args.rounds,
                             progress=progress)
    nan = dict.fromkeys(VARIANTS, float("nan"))  # a variant left out by --only
    secs = {**nan, **_bench.print_rounds("seconds", _bench.values(runs, "seconds"))}
    gib = {**nan, **_bench.print_rounds("driver peak GiB", _bench.values(runs, "peak_rss_bytes", 1 / GIB), digits=2)}
    d, ref = "distributed", "reference"
    _bench.last_line({"users": args.users, "events": events, "distributed_s": f"{secs[d]:.1f}",
                      "reference_s": f"{secs[ref]:.1f}", "speedup": f"{secs[ref] / secs[d]:.2f}",
                      "distributed_driver_gib": f"{gib[d]:.2f}", "reference_driver_gib": f"{gib[ref]:.2f}"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
