"""Synthetic generator throughput: events/s for N users × E events on one core.

    python jobs/bench_synthetic.py --users 1000000 --events 50 [--out DIR]

Last line: the ratio of the target time (60 s for 1M × 50 events, scaled to the size asked) to the time taken.
"""

from __future__ import annotations

import argparse
import time

from interestrec.data.synthetic import generate, write_shards


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--users", type=int, default=1_000_000)
    p.add_argument("--events", type=int, default=50)
    p.add_argument("--items", type=int, default=100_000)
    p.add_argument("--clusters", type=int, default=64)
    p.add_argument("--windows", type=int, default=4)
    p.add_argument("--out", default=None, help="also write parquet shards here")
    args = p.parse_args()
    t0 = time.perf_counter()
    data = generate(args.users, args.items, args.clusters, args.windows, args.events, drift_rate=0.2, seed=0)
    gen = time.perf_counter() - t0
    n = data.events.num_rows
    print(f"generated {n:,} events for {args.users:,} users in {gen:.1f}s ({n / gen / 1e6:.2f}M events/s)")
    if args.out:
        t1 = time.perf_counter()
        write_shards(data, args.out)
        print(f"wrote shards in {time.perf_counter() - t1:.1f}s")
    target = 60.0 * n / 50_000_000
    print(f"target_s/actual_s={target / gen:.2f}")


if __name__ == "__main__":
    main()
