"""Benchmark: the evaluate stage with 1 vs 2 Ray workers (Tune trials, Ray tasks), fresh processes, alternating.

    python jobs/bench_eval.py                                   # configs/default.yaml's evaluate, out/bench-eval
    python jobs/bench_eval.py --config configs/demo.yaml --rounds 3
    python jobs/bench_eval.py --workers 1,2 --with-local        # also the one-process reference executor

The upstream stages (ingest … graph) run once first, unmeasured, when ``--out`` lacks them. Then every
variant runs the evaluate stage (``--force``) in its own fresh process with its own local Ray of exactly
that many CPUs (``evaluate.workers`` the same), for ``--rounds`` rounds, the order flipped every other
round; the wall time of the stage is each round's number and the median is reported. ``--with-local``
adds the reference executor (``evaluate.executor=local``: every fit in the driver, torch free to use
every core) as the anchor a user has without Ray. Each child hashes the table (every row's metrics and
params) and its ranks files; the job checks they are identical across variants and rounds. The last line
is ``config=<yaml> workers_1_s=<x> workers_2_s=<y> identical=<yes|no> speedup_2_over_1=<x/y>``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from pathlib import Path

import _bench
import _services

ROOT = Path(__file__).resolve().parents[1]
UPSTREAM = ("ingest", "adapt", "encode", "cluster", "dynamics", "graph")
PREPARE = "prepare"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default=str(ROOT / "configs" / "default.yaml"))
    p.add_argument("--data", default=None, help="dataset (default: the CLI's: $INTERESTREC_DATA, ../shared/data/...)")
    p.add_argument("--out", default="out/bench-eval", help="pipeline output; upstream stages are run once if absent")
    p.add_argument("--workers", default="1,2", help="comma-separated worker counts (each a local Ray of that many CPUs)")
    p.add_argument("--with-local", action="store_true", help="also the one-process reference executor")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config overrides for every variant")
    _bench.add_child_flag(p)
    return p.parse_args(argv)


def table_digest(out: str) -> str:
    """sha256 of the evaluate table (every row's metrics and params, not its seconds or trial records) and of
    every ranks file's rows."""
    import pyarrow.parquet as pq

    summary = json.loads((Path(out) / "evaluate" / "summary.json").read_text())
    table = {n: {k: v for k, v in m.items() if k not in ("seconds", "tuning")} for n, m in summary["models"].items()}
    h = hashlib.sha256(json.dumps(table, sort_keys=True, default=str).encode())
    for d in ("ranks", "cold_ranks"):
        for p in sorted((Path(out) / "evaluate" / d).glob("*.parquet")):
            h.update(p.name.encode() + json.dumps(pq.read_table(p).to_pydict(), default=str).encode())
    return h.hexdigest()


def overrides(variant: str, extra: list[str]) -> list[str]:
    """The variant's ``--set`` values: its executor and workers, then the job's own."""
    if variant == "local":
        return ["evaluate.executor=local", *extra]
    return ["evaluate.executor=ray", f"evaluate.workers={int(variant.split('_')[0])}", *extra]


def child(args: argparse.Namespace) -> int:
    """One evaluate run in this fresh process: its own local Ray, then the stage, then the digest (or, as
    ``prepare``, the upstream stages)."""
    import interestrec

    if args.child == PREPARE:
        _services.start_local_ray()
        config = interestrec.load_config(args.config, args.set)
        interestrec.run(args.out, data=args.data, config=config, stages=list(UPSTREAM))
        _bench.emit({})
        return 0
    cpus = 2 if args.child == "local" else int(args.child.split("_")[0])
    _services.start_local_ray(num_cpus=cpus)
    config = interestrec.load_config(args.config, overrides(args.child, args.set))
    t0 = time.perf_counter()
    interestrec.run(args.out, data=args.data, config=config, stages=["evaluate"], force=True)
    seconds = time.perf_counter() - t0
    _bench.emit({"seconds": seconds, "digest": table_digest(args.out)})
    return 0


def prepare(args: argparse.Namespace, child_argv: list[str]) -> None:
    """Run the upstream stages once, in a fresh process (not measured), when ``--out`` lacks any of them."""
    if all((Path(args.out) / s / "summary.json").exists() for s in UPSTREAM):
        return
    print(f"preparing the upstream stages {', '.join(UPSTREAM)} in {args.out} (not measured)", flush=True)
    _bench.run_child(PREPARE, _bench.Child(__file__, child_argv))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        return child(args)
    counts = [int(w) for w in args.workers.split(",")]
    names = [f"{w}_worker{'s' * (w != 1)}" for w in counts] + (["local"] if args.with_local else [])
    child_argv = ["--config", args.config, "--out", args.out, *(["--data", args.data] if args.data else []),
                  *[a for kv in args.set for a in ("--set", kv)]]
    prepare(args, child_argv)
    _bench.how_it_ran(f"{args.config}'s evaluate stage on {args.out}; each variant in a fresh process with a local "
                      f"Ray of that many CPUs (local: 2, the reference executor); {_bench.rounds_text(names, args.rounds)}")
    variants = {n: _bench.Child(__file__, child_argv, env={**os.environ, "PYTHONUNBUFFERED": "1"}) for n in names}
    runs = _bench.run_rounds(variants, args.rounds, workers=True,
                             progress=lambda n, r: f"{r['seconds']:.1f} s (table {r['digest'][:12]})")
    med = _bench.print_rounds("evaluate s", _bench.values(runs, "seconds"))
    digests = {r["digest"] for rs in runs.values() for r in rs}
    identical = "yes" if len(digests) == 1 else "no"
    print(f"tables and ranks identical across variants and rounds: {identical} ({len(digests)} distinct)")
    fields: dict[str, object] = {"config": Path(args.config).name}
    fields.update({f"workers_{w}_s": round(med[n], 1) for w, n in zip(counts, names)})
    if args.with_local:
        fields["local_s"] = round(med["local"], 1)
    fields["identical"] = identical
    ratio = None
    if 1 in counts and 2 in counts:
        ratio = ("speedup_2_over_1", med[names[counts.index(1)]] / med[names[counts.index(2)]])
    _bench.last_line(fields, ratio)
    return 0


if __name__ == "__main__":
    sys.exit(main())
