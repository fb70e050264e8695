"""Benchmark: GraphSAGE epoch time with 1 vs 2 Ray Train workers, and the quality rows.

    python jobs/bench_train.py --out DIR                       # DIR has ingest/ (+ encode/, cluster/)
    python jobs/bench_train.py --out DIR --epochs 3 --skip-quality
    python jobs/bench_train.py --out DIR --skip-timing --models graphsage graphsage_apr gat mostpop ease

Timing: the same config trained by ``TorchTrainer`` with 1 and with 2 workers (DDP, each worker taking
half of every epoch's supervision edges), the mean seconds per training epoch (validation excluded).
Quality: the evaluation table's protocol (full ranking, leave-last-out, each row's first grid point fitted on
train+valid, test metrics — ``tune_and_evaluate`` with tuning off) for the chosen rows,
plus NDCG@10 under a random ε-perturbation of the embeddings for the GraphSAGE rows. The last line is
the 1-worker ÷ 2-worker epoch-time ratio.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import numpy as np


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
    return p.parse_args(argv)


def time_workers(out: str, workers: list[int], epochs: int, cpus: float, rounds: int = 1) -> dict[int, float]:
    """Median seconds per training epoch for each worker count; every fit is a new Ray Train run (fresh
    worker processes) and the counts alternate, the order flipping every round."""
    from interestrec.graph.config import GraphConfig
    from interestrec.graph.stage import result_curve, train_with_ray
    from interestrec.graph.train import GraphJob

    per_epoch: dict[int, list[float]] = {w: [] for w in workers}
    with tempfile.TemporaryDirectory() as storage:
        order = [(i, w) for i in range(rounds) for w in (workers if i % 2 == 0 else workers[::-1])]
        for r, w in order:
            cfg = GraphConfig(epochs=epochs, num_workers=w, cpus_per_worker=cpus, companion=False)
            t0 = time.perf_counter()
            result = train_with_ray(GraphJob(cfg, os.path.abspath(out)), storage, name=f"bench-{w}-{r}")
            curve = result_curve(result)
            per_epoch[w].append(float(np.mean([m["seconds"] for m in curve])))
            print(f"round {r + 1} workers={w}: {per_epoch[w][-1]:.2f} s/epoch (train only), {time.perf_counter() - t0:.1f} s wall "
                  f"for {epochs} epochs incl. start-up and validation; losses {[round(m['loss'], 4) for m in curve]}",
                  flush=True)
    return {w: float(np.median(v)) for w, v in per_epoch.items()}


def quality(out: str, models: list[str], eps: float) -> None:
    from interestrec.evaluate.base import REGISTRY
    from interestrec.evaluate.models.graphsage import GraphRow
    from interestrec.evaluate.protocol import evaluate_model
    from interestrec.evaluate.stage import load_models
    from interestrec.graph.train import load_interactions, perturbed_ndcg

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
    args = parse_args(argv)
    from interestrec import cli as pipeline

    pipeline.init_ray(False)
    per_epoch = {} if args.skip_timing else time_workers(args.out, args.workers, args.epochs, args.cpus_per_worker,
                                                              args.rounds)
    if not args.skip_quality:
        quality(args.out, args.models, args.eps)
    if len(per_epoch) >= 2:
        a, b = sorted(per_epoch)[:2]
        print(f"epoch time {a} worker(s) / {b} workers: {per_epoch[a] / per_epoch[b]:.2f}x "
              f"(medians of {args.rounds} alternating rounds, each a fresh Ray Train run)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
