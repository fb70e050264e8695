"""Benchmark the ``adapt`` stage: Ray Train time per epoch with 1 vs 2 workers, and LLM-only row quality.

    # quality: ingest + adapt + evaluate the LLM-only rows next to EASE^R (the rows of interestrec.evaluate.models.adapt)
    python jobs/bench_adapt.py quality --out DIR [--config configs/adapt-bench.yaml] [--set KEY=VALUE ...]
    # time per epoch, 1 vs 2 workers, on DIR/adapt's pairs (run `prepare`, `quality` or the adapt stage first)
    python jobs/bench_adapt.py prepare --out DIR --data PATH
    python jobs/bench_adapt.py timing --out DIR [--config ...] [--objective contrastive] [--rounds 2]

``timing`` runs every measurement in its own fresh Python process (its own local Ray), alternating
1, 2, 1, 2 workers, the same config and pairs, each in a new Ray Train run (nothing resumed), and prints
the median seconds per epoch of each and their ratio.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from interestrec import cli

ROOT = Path(__file__).resolve().parents[1]


def quality(args: argparse.Namespace, rest: list[str]) -> int:
    from interestrec import artifacts

    rc = cli.main(["run", "--out", args.out, "--config", args.config, "--stages", "ingest,adapt,evaluate", *rest])
    if rc:
        return rc
    models = artifacts.read_json(artifacts.join(args.out, "evaluate", "summary.json"))["models"]
    print("row | valid NDCG@10 | test NDCG@10 | test Recall@20 | params")
    for name, m in models.items():
        print(f"{name} | {m.get('valid_ndcg@10', float('nan')):.4f} | {m['ndcg@10']:.4f} | {m['recall@20']:.4f} | {m['params']}")
    cold_targets(args.out, models)
    return 0


def cold_targets(out: str, models: dict) -> None:
    """Test users whose held-out item has no train/valid interaction at all (naturally cold items):
    Recall@20 / NDCG@20 of each row at its tuned params over all items."""
    import numpy as np

    from interestrec import artifacts
    from interestrec.data import load_ingest
    from interestrec.evaluate import metrics
    from interestrec.evaluate.base import REGISTRY
    from interestrec.evaluate.data import build_interactions
    from interestrec.evaluate.protocol import rank_targets

    art = load_ingest(artifacts.join(out, "ingest"))
    item_ids = np.unique(np.r_[art.items["item_id"].to_numpy(), art.events["item_id"].to_numpy()])
    test = build_interactions(art.events, item_ids, "test", out)
    seen = np.asarray((test.train > 0).sum(0)).ravel() > 0
    cold = (test.target >= 0) & ~seen[np.maximum(test.target, 0)]
    print(f"cold-target slice: {int(cold.sum())} of {int((test.target >= 0).sum())} test users")
    print("row | cold Recall@20 | cold NDCG@20")
    for name, m in models.items():
        r = rank_targets(REGISTRY[name](**m["params"]).fit(test), test)
        sel = cold[r.users]
        print(f"{name} | {metrics.recall(r.rank[sel], 20):.4f} | {metrics.ndcg(r.rank[sel], 20):.4f}")


def prepare(args: argparse.Namespace, rest: list[str]) -> int:
    """Ingest, then write the adapt stage's contrastive training inputs (pairs, item texts) without encoding."""
    import pyarrow as pa

    from interestrec import artifacts
    from interestrec.adapt.pairs import leak_free_texts, pairs_from_ingest, to_table
    from interestrec.data import load_ingest

    rc = cli.main(["run", "--out", args.out, "--config", args.config, "--stages", "ingest", *rest])
    if rc:
        return rc
    cfg = cli.load_config(args.config, args.set).adapt
    art = load_ingest(artifacts.join(args.out, "ingest"))
    ids, texts = leak_free_texts(art.items)
    pairs = pairs_from_ingest(art.events, cfg.pair_kinds, cfg.context_items, cfg.max_pairs, cfg.seed)
    artifacts.write_parquet(artifacts.join(args.out, "adapt", "items.parquet"), pa.table({"item_id": ids, "text": texts}))
    artifacts.write_parquet(artifacts.join(args.out, "adapt", "pairs_contrastive.parquet"), to_table(pairs))
    print(f"prepared {len(pairs)} contrastive pairs over {len(ids)} items")
    return 0


def train_once(args: argparse.Namespace) -> int:
    """One fresh Ray Train run on DIR/adapt's pairs with ``--workers``; prints its curve as json."""
    import dataclasses

    import numpy as np
    import ray

    from interestrec import artifacts
    from interestrec.adapt.stage import train_with_ray
    from interestrec.adapt.train import AdaptJob
    from interestrec.encode.encoder import model_path

    cfg = dataclasses.replace(cli.load_config(args.config, args.set).adapt, num_workers=args.workers)
    ray.init(address="local", include_dashboard=False, log_to_driver=False)
    adapt = artifacts.join(str(Path(args.out).resolve()), "adapt")
    with tempfile.TemporaryDirectory() as storage:
        # the objective's max_pairs caps the stage's pairs (a seeded sample, the same in every process)
        pairs = artifacts.read_parquet(artifacts.join(adapt, f"pairs_{args.objective}.parquet"))
        keep = np.sort(np.random.default_rng(0).permutation(len(pairs))[: cfg.schedule(args.objective)[0]])
        pairs_path = str(Path(storage) / "pairs.parquet")
        artifacts.write_parquet(pairs_path, pairs.take(keep))
        job = AdaptJob(adapt=cfg, objective=args.objective, pairs_path=pairs_path,
                       items_path=artifacts.join(adapt, "items.parquet"), model_path=model_path(cfg.base_model))
        t0 = time.perf_counter()
        result = train_with_ray(job, storage, f"bench-{args.workers}")
        wall = time.perf_counter() - t0
        with result.checkpoint.as_directory() as d:
            curve = json.loads(Path(d, "state.json").read_text())["curve"]
    print("RESULT " + json.dumps({"workers": args.workers, "wall": wall, "curve": curve}), flush=True)
    return 0


def timing(args: argparse.Namespace) -> int:
    runs: dict[int, list[dict]] = {1: [], 2: []}
    for r in range(args.rounds):
        for w in (1, 2):
            cmd = [sys.executable, __file__, "train-once", "--out", args.out, "--config", args.config,
                   "--objective", args.objective, "--workers", str(w), *sum((["--set", s] for s in args.set), [])]
            out = subprocess.run(cmd, capture_output=True, text=True, check=False)
            line = [x for x in out.stdout.splitlines() if x.startswith("RESULT ")]
            if out.returncode or not line:
                print(out.stdout[-3000:], out.stderr[-3000:], file=sys.stderr)
                return 1
            res = json.loads(line[-1][len("RESULT "):])
            runs[w].append(res)
            eps = [round(m["seconds"], 2) for m in res["curve"]]
            print(f"round {r} workers={w}: seconds/epoch {eps}, pairs/worker {res['curve'][0]['pairs']}, "
                  f"run wall {res['wall']:.1f}s", flush=True)
    med = {w: statistics.median(m["seconds"] for res in rs for m in res["curve"]) for w, rs in runs.items()}
    print(f"objective={args.objective} median seconds/epoch: 1 worker {med[1]:.2f}, 2 workers {med[2]:.2f}; "
          f"speed-up {med[1] / med[2]:.2f}x")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("mode", choices=("quality", "timing", "train-once", "prepare"))
    p.add_argument("--out", required=True)
    p.add_argument("--config", default=str(ROOT / "configs/adapt-bench.yaml"))
    p.add_argument("--set", action="append", default=[])
    p.add_argument("--objective", default="contrastive", choices=("contrastive", "projection"))
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--rounds", type=int, default=2)
    args, rest = p.parse_known_args(argv)
    if args.mode in ("quality", "prepare"):
        return (quality if args.mode == "quality" else prepare)(args, [*rest, *sum((["--set", s] for s in args.set), [])])
    return train_once(args) if args.mode == "train-once" else timing(args)


if __name__ == "__main__":
    sys.exit(main())
