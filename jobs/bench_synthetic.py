"""Synthetic generator throughput: events/s for N users × E events on one core.

    python jobs/bench_synthetic.py --users 1000000 --events 50 [--out DIR] [--rounds 1]

Each round generates the log in its own fresh process (``_bench``; ``--out`` also writes the parquet shards
there, timed apart). The table gives each round's seconds and the median. The last line is
``users=<n> events=<m> seconds=<s> target_s/actual_s=<r>``: the ratio of the target time (60 s for 1M × 50
events, scaled to the size asked) to the median time taken.
"""

from __future__ import annotations

import argparse
import sys
import time

import _bench


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--users", type=int, default=1_000_000)
    p.add_argument("--events", type=int, default=50)
    p.add_argument("--items", type=int, default=100_000)
    p.add_argument("--clusters", type=int, default=64)
    p.add_argument("--windows", type=int, default=4)
    p.add_argument("--out", default=None, help="also write parquet shards here")
    p.add_argument("--rounds", type=int, default=1, help="runs, each in a fresh process; medians")
    _bench.add_child_flag(p)  # internal: one generation in this fresh process
    return p.parse_args(argv)


def child(args: argparse.Namespace) -> int:
    """One generation (and write, with ``--out``) in this process; emits events and seconds."""
    from interestrec.data.synthetic import generate, write_shards

    t0 = time.perf_counter()
    data = generate(args.users, args.items, args.clusters, args.windows, args.events, drift_rate=0.2, seed=0)
    gen = time.perf_counter() - t0
    write = None
    if args.out:
        t1 = time.perf_counter()
        write_shards(data, args.out)
        write = time.perf_counter() - t1
    _bench.emit({"events": int(data.events.num_rows), "seconds": gen, "write_s": write})
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if args.child:
        return child(args)
    _bench.how_it_ran(f"{args.users:,} users x {args.events} events, {args.items:,} items; each generation in its "
                      "own fresh process; " + _bench.rounds_text(["generate"], args.rounds))

    def progress(_: str, r: dict) -> str:
        wrote = f"; wrote shards in {r['write_s']:.1f}s" if r["write_s"] is not None else ""
        return (f"generated {r['events']:,} events in {r['seconds']:.1f}s "
                f"({r['events'] / r['seconds'] / 1e6:.2f}M events/s){wrote}")

    runs = _bench.run_rounds({"generate": _bench.Child(__file__, argv)}, args.rounds, progress=progress)
    seconds = _bench.print_rounds("seconds", _bench.values(runs, "seconds"))["generate"]
    n = runs["generate"][0]["events"]
    target = 60.0 * n / 50_000_000
    _bench.last_line({"users": args.users, "events": n, "seconds": f"{seconds:.1f}"},
                     ratio=("target_s/actual_s", target / seconds), digits=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
