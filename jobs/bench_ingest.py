"""Ingest at scale: the distributed stage against the driver-side reference, side by side.

    python jobs/bench_ingest.py --users 100000 --events-per-user 50 --rounds 3
    python jobs/bench_ingest.py --users 1000000 --events-per-user 50 --rounds 1 --only distributed

Generates a seeded synthetic log once (``interestrec.data.synthetic``, kept under ``--raw`` so later runs reuse
it), then ingests it with ``interestrec.data.stage.ingest`` (distributed: shuffle by user, workers write) and
``interestrec.data.reference.ingest_in_driver`` (every event collected into the driver). Each run is its own
fresh process with its own local Ray (2 CPUs here), the two alternate round by round, and the table gives
medians: wall seconds of the ingest call and the driver's peak RSS (sampled every 0.2 s; ``ru_maxrss`` would
carry the RSS of the process that forked it across ``exec``; Ray workers are separate processes). The log is
generated in a process of its own for the same reason. The last line is
``users=<n> events=<m> distributed_s=<s> reference_s=<s> speedup=<x> distributed_driver_gib=<g> reference_driver_gib=<g>``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

GIB = 1024**3

RUN = """
import json, sys, threading, time
import psutil
import ray
me, peak, done = psutil.Process(), [0], threading.Event()
def sample():
    while not done.wait(0.2):
        peak[0] = max(peak[0], me.memory_info().rss)
threading.Thread(target=sample, daemon=True).start()
from interestrec.data import IngestConfig
ray.init(address="local", num_cpus={cpus}, include_dashboard=False, log_to_driver=False)
from {module} import {fn}
t = time.perf_counter()
s = {fn}({raw!r}, IngestConfig(format="synthetic", n_windows=4), {out!r})
secs = time.perf_counter() - t
done.set()
peak[0] = max(peak[0], me.memory_info().rss)
print("RESULT " + json.dumps({{"seconds": secs, "rss": peak[0],
                               "accepted": s["accepted"], "rows_read": s["rows_read"], "users": s["users"],
                               "phases": s.get("phase_seconds"), "phase_rss_mb": s.get("phase_driver_peak_rss_mb")}}))
"""

VARIANTS = {"distributed": ("interestrec.data.stage", "ingest"),
            "reference": ("interestrec.data.reference", "ingest_in_driver")}


GENERATE = """
from interestrec.data.synthetic import generate, write_shards
write_shards(generate({users}, 2000, 32, 4, {epu}, seed=0), {raw!r})
"""


def generate(users: int, events_per_user: int, raw: str) -> int:
    """The synthetic log under ``raw`` (written by a separate process when absent); its number of events."""
    import pyarrow.parquet as pq

    if not os.path.exists(os.path.join(raw, "items.parquet")):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", GENERATE.format(users=users, epu=events_per_user, raw=raw)], check=True)
        print(f"generated the log for {users:,} users in {time.perf_counter() - t:.1f}s", flush=True)
    return sum(pq.ParquetFile(os.path.join(raw, f)).metadata.num_rows for f in os.listdir(raw) if f.startswith("events-"))


def run_once(variant: str, raw: str, cpus: int) -> dict:
    module, fn = VARIANTS[variant]
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as out:
        code = RUN.format(cpus=cpus, module=module, fn=fn, raw=raw, out=out)
        p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        if p.returncode:
            raise SystemExit(f"{variant} failed:\n{p.stderr[-3000:]}")
        line = next(ln for ln in p.stdout.splitlines() if ln.startswith("RESULT "))
        return json.loads(line[len("RESULT "):])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--users", type=int, default=100_000)
    p.add_argument("--events-per-user", type=int, default=50)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--cpus", type=int, default=os.cpu_count() or 2)
    p.add_argument("--only", choices=sorted(VARIANTS), default=None, help="run one variant")
    p.add_argument("--raw", default=None, help="synthetic log directory (generated when absent; default under /tmp)")
    args = p.parse_args(argv)
    raw = args.raw or os.path.join(tempfile.gettempdir(), f"interestrec-synth-{args.users}x{args.events_per_user}")
    events = generate(args.users, args.events_per_user, raw)
    variants = [args.only] if args.only else list(VARIANTS)
    runs: dict[str, list[dict]] = {v: [] for v in variants}
    for r in range(args.rounds):
        for v in (variants if r % 2 == 0 else variants[::-1]):  # alternate which goes first
            res = run_once(v, raw, args.cpus)
            if res["rows_read"] != events or res["accepted"] != events:
                raise SystemExit(f"{v}: read {res['rows_read']:,} / accepted {res['accepted']:,} of {events:,} events")
            runs[v].append(res)
            print(f"round {r + 1} {v:<12} {res['seconds']:8.1f}s  driver peak {res['rss'] / GIB:6.2f} GiB", flush=True)
            if res.get("phases"):
                print(f"    phases (s): {res['phases']}\n    driver peak after each (MB): {res['phase_rss_mb']}", flush=True)
    med = {v: (statistics.median(x["seconds"] for x in rs), statistics.median(x["rss"] for x in rs) / GIB)
           for v, rs in runs.items()}
    print(f"\n{'variant':<12}{'median s':>10}{'driver peak GiB':>17}   ({args.rounds} rounds, fresh process each, "
          f"alternating, {args.cpus} CPUs, load {os.getloadavg()[0]:.1f})")
    for v, (s, g) in med.items():
        print(f"{v:<12}{s:10.1f}{g:17.2f}")
    d, ref = med.get("distributed", (float("nan"),) * 2), med.get("reference", (float("nan"),) * 2)
    print(f"users={args.users} events={events} distributed_s={d[0]:.1f} reference_s={ref[0]:.1f} "
          f"speedup={ref[0] / d[0]:.2f} distributed_driver_gib={d[1]:.2f} reference_driver_gib={ref[1]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
