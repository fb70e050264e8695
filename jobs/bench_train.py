"""Benchmark: GraphSAGE epoch time with 1 vs 2 Ray Train workers, and the quality rows.

    python jobs/bench_train.py --out DIR                       # DIR has ingest/ (+ encode/, cluster/)
    python jobs/bench_train.py --out DIR --epochs 3 --skip-quality
    python jobs/bench_train.py --out DIR --skip-timing --models graphsage graphsage_apr gat mostpop ease

Timing: the same config trained by ``TorchTrainer`` with 1 and with 2 workers (DDP, each worker taking
half of every epoch's supervision edges), the mean seconds per training epoch (validation excluded); each
fit is a new Ray Train run in its own fresh process, the counts alternating round by round (``_bench``).
Quality: the evaluation table's protocol (full ranking, leave-last-out, each row's first grid point fitted on
train+valid, test metrics — ``tune_and_evaluate`` with tuning off) for the chosen rows,
plus NDCG@10 under a random ε-perturbation of the embeddings for the GraphSAGE rows. The last line is
``epochs=<e> s_per_epoch_1=<a> s_per_epoch_2=<b> speedup_2_over_1=<a/b>`` (medians; the two smallest
``--workers``).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import numpy as np

import _bench


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="pipeline output with ingest/ (encode/ and cluster/ optional)")
    p.add_argument("--epochs", type=int, default=3, help="epochs per timing run")
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    p.add_argument("--rounds", type=int, default=2, help="alternating rounds (order flips each round); medians")
    p.add_argument("--cpus-per-worker", type=float, default=1.0)
    p.add_argument("--models", nargs="+", default=["graphsage", "graphsage_apr", "gat", "mostpop", "ease"])
    p.add_argument("--eps", type=float, default=0.5, help="test-time perturbation size (relative to the norm)")
    p.add_argument("--skip-timing", action="store_true")
    p.add_argument("--skip-quality", action="store_true")
    _bench.add_child_flag(p)  # internal: one timing fit with that many workers
    return p.parse_args(argv)


def train_once(args: argparse.Namespace) -> int:
    """One timing fit with ``--child`` workers in this fresh process (a new Ray Train run); emits its curve."""
    from interestrec import cli as pipeline
    from interestrec.graph.config import GraphConfig
    from interestrec.graph.stage import result_curve, train_with_ray
    from interestrec.graph.train import GraphJob

    w = int(args.child)
    pipeline.init_ray(False)
    cfg = GraphConfig(epochs=args.epochs, num_workers=w, cpus_per_worker=args.cpus_per_worker, companion=False)
    with tempfile.TemporaryDirectory() as storage:
        curve = result_curve(train_with_ray(GraphJob(cfg, os.path.abspath(args.out)), storage, name=f"bench-{w}"))
    _bench.emit({"s_per_epoch": float(np.mean([m["seconds"] for m in curve])),
                 "losses": [round(m["loss"], 4) for m in curve]})
    return 0


def time_workers(args: argparse.Namespace, argv: list[str]) -> dict[int, list[float]]:
    """Seconds per training epoch of each round, per worker count; every fit in a fresh process, alternating."""
    names = [str(w) for w in args.workers]
    _bench.how_it_ran(f"{args.epochs} epochs, {args.cpus_per_worker} CPU(s) per worker; each fit a new Ray Train run "
                      "in its own fresh process; workers: " + _bench.rounds_text(names, args.rounds))
    runs = _bench.run_rounds({n: _bench.Child(__file__, argv) for n in names}, args.rounds, progress=lambda n, r: (
        f"{r['s_per_epoch']:.2f} s/epoch (train only), {r['wall_s']:.1f} s wall for {args.epochs} epochs incl. "
        f"process and Ray start-up and validation; losses {r['losses']}"))
    return {int(n): v for n, v in _bench.values(runs, "s_per_epoch").items()}


def quality(out: str, models: list[str], eps: float) -> None:
    from interestrec.evaluate.base import REGISTRY
    from interestrec.evaluate.models.graphsage import GraphRow
    from interestrec.evaluate.protocol import evaluate_model
    from interestrec.evaluate.stage import load_models
    from interestrec.graph.train import perturbed_ndcg
    from interestrec.graph.training_graph import load_interactions

    load_models()
    test = load_interactions(out, "test")
    print(f"{'model':<16}{'NDCG@10':>9}{'HR@10':>8}{'Recall@20':>11}{'MRR':>8}{'NDCG@10 ε-perturbed':>22}{'seconds':>9}")
    for name in models:
        if name not in REGISTRY:
            print(f"{name:<16} not registered")
            continue
        t0 = time.perf_counter()
        model = REGISTRY[name](**REGISTRY[name].grid[0]).fit(test)  # the table's protocol with tuning off
        r = evaluate_model(model, test, (10, 20))
        r["seconds"] = time.perf_counter() - t0
        pert = perturbed_ndcg(model.users, model.items, test, eps) if isinstance(model, GraphRow) else None
        ptxt = f"{pert:.4f}" if pert is not None else "-"
        print(f"{name:<16}{r['ndcg@10']:>9.4f}{r['hr@10']:>8.4f}{r['recall@20']:>11.4f}{r['mrr']:>8.4f}{ptxt:>22}"
              f"{r['seconds']:>9.1f}", flush=True)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if args.child:
        return train_once(args)
    per_epoch = {} if args.skip_timing else time_workers(args, argv)
    if not args.skip_quality:
        from interestrec import cli as pipeline

        pipeline.init_ray(False)
        quality(args.out, args.models, args.eps)
    if len(per_epoch) >= 2:
        med = _bench.print_rounds("s/epoch by workers", per_epoch, digits=2)
        a, b = sorted(per_epoch)[:2]
        _bench.last_line({"epochs": args.epochs, f"s_per_epoch_{a}": med[a], f"s_per_epoch_{b}": med[b]},
                         ratio=(f"speedup_{b}_over_{a}", med[a] / med[b]), digits=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
