"""Benchmark the ``adapt`` stage: Ray Train time per epoch with 1 vs 2 workers, and LLM-only row quality.

    # quality: ingest + adapt + evaluate the LLM-only rows next to EASE^R (the rows of interestrec.evaluate.models.adapt)
    python jobs/bench_adapt.py quality --out DIR [--config configs/adapt-bench.yaml] [--set KEY=VALUE ...]
    # time per epoch, 1 vs 2 workers, on DIR/adapt's pairs (run `prepare`, `quality` or the adapt stage first)
    python jobs/bench_adapt.py prepare --out DIR --data PATH
    python jobs/bench_adapt.py timing --out DIR [--config ...] [--objective contrastive] [--rounds 2] [--workers 1 2]

``timing`` runs every measurement in its own fresh Python process (its own local Ray), the worker counts
alternating (1, 2 / 2, 1 / ...: ``_bench``), the same config and pairs, each in a new Ray Train run (nothing
resumed). Each run's value is its median seconds per epoch; the table gives each round and the medians. The
last line is ``objective=<o> s_per_epoch_1=<a> s_per_epoch_2=<b> speedup_2_over_1=<a/b>`` (the first two
``--workers``, smallest first).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import _bench
import _services
from interestrec import cli

ROOT = Path(__file__).resolve().parents[1]


def quality(args: argparse.Namespace, rest: list[str]) -> int:
    from interestrec import artifacts, layout

    rc = cli.main(["run", "--out", args.out, "--config", args.config, "--stages", "ingest,adapt,evaluate", *rest])
    if rc:
        return rc
    models = artifacts.read_json(artifacts.join(args.out, layout.EVALUATE, layout.SUMMARY))["models"]
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

    from interestrec import artifacts, layout
    from interestrec.adapt.pairs import leak_free_texts, pairs_from_ingest, to_table
    from interestrec.data import load_ingest

    rc = cli.main(["run", "--out", args.out, "--config", args.config, "--stages", "ingest", *rest])
    if rc:
        return rc
    cfg = cli.load_config(args.config, args.set).adapt
    art = load_ingest(artifacts.join(args.out, "ingest"))
    ids, texts = leak_free_texts(art.items)
    pairs = pairs_from_ingest(art.events, cfg.pair_kinds, cfg.context_items, cfg.max_pairs, cfg.seed)
    artifacts.write_parquet(artifacts.join(args.out, layout.ADAPT, layout.ADAPT_ITEMS),
                            pa.table({"item_id": ids, "text": texts}))
    artifacts.write_parquet(artifacts.join(args.out, layout.ADAPT, layout.ADAPT_PAIRS.format(objective="contrastive")),
                            to_table(pairs))
    print(f"prepared {len(pairs)} contrastive pairs over {len(ids)} items")
    return 0


def train_once(args: argparse.Namespace) -> int:
    """One fresh Ray Train run on DIR/adapt's pairs with ``--child`` workers; emits its curve."""
    import dataclasses

    import numpy as np

    from interestrec import artifacts, layout
    from interestrec.adapt.stage import train_with_ray
    from interestrec.adapt.train import AdaptJob
    from interestrec.encode.encoder import model_path

    workers = int(args.child)
    cfg = dataclasses.replace(cli.load_config(args.config, args.set).adapt, num_workers=workers)
    _services.start_local_ray()
    adapt = artifacts.join(str(Path(args.out).resolve()), layout.ADAPT)
    with tempfile.TemporaryDirectory() as storage:
        # the objective's max_pairs caps the stage's pairs (a seeded sample, the same in every process)
        pairs = artifacts.read_parquet(artifacts.join(adapt, layout.ADAPT_PAIRS.format(objective=args.objective)))
        keep = np.sort(np.random.default_rng(0).permutation(len(pairs))[: cfg.schedule(args.objective)[0]])
        pairs_path = str(Path(storage) / "pairs.parquet")
        artifacts.write_parquet(pairs_path, pairs.take(keep))
        job = AdaptJob(adapt=cfg, objective=args.objective, pairs_path=pairs_path,
                       items_path=artifacts.join(adapt, layout.ADAPT_ITEMS), model_path=model_path(cfg.base_model))
        t0 = time.perf_counter()
        result = train_with_ray(job, storage, f"bench-{workers}")
        wall = time.perf_counter() - t0
        with result.checkpoint.as_directory() as d:
            curve = json.loads(Path(d, "state.json").read_text())["curve"]
    _bench.emit({"workers": workers, "train_s": wall, "curve": curve,
                 "s_per_epoch": _bench.median([m["seconds"] for m in curve])})
    return 0


def timing(args: argparse.Namespace, argv: list[str]) -> int:
    """The worker counts side by side, each run in a fresh process, alternating; tables and the last line."""
    names = [str(w) for w in args.workers]
    _bench.how_it_ran(f"objective={args.objective}, {' '.join([args.config, *args.set])}; each run a new Ray Train "
                      "run in its own fresh process with its own local Ray; workers: " + _bench.rounds_text(names, args.rounds))

    def progress(_: str, res: dict) -> str:
        eps = [round(m["seconds"], 2) for m in res["curve"]]
        return f"seconds/epoch {eps}, pairs/worker {res['curve'][0]['pairs']}, run wall {res['train_s']:.1f}s"

    runs = _bench.run_rounds({n: _bench.Child(__file__, argv) for n in names}, args.rounds, progress=progress)
    med = _bench.print_rounds("s/epoch by workers", _bench.values(runs, "s_per_epoch"), digits=2)
    a, b = sorted(args.workers)[:2]
    _bench.last_line({"objective": args.objective, f"s_per_epoch_{a}": med[str(a)], f"s_per_epoch_{b}": med[str(b)]},
                     ratio=(f"speedup_{b}_over_{a}", med[str(a)] / med[str(b)]), digits=2)
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("mode", choices=("quality", "timing", "prepare"))
    p.add_argument("--out", required=True)
    p.add_argument("--config", default=str(ROOT / "configs/adapt-bench.yaml"))
    p.add_argument("--set", action="append", default=[])
    p.add_argument("--objective", default="contrastive", choices=("contrastive", "projection"))
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="timing: worker counts compared")
    p.add_argument("--rounds", type=int, default=2)
    _bench.add_child_flag(p)  # internal (timing): one Ray Train run with that many workers
    args, rest = p.parse_known_args(argv)
    if args.mode in ("quality", "prepare"):
        return (quality if args.mode == "quality" else prepare)(args, [*rest, *sum((["--set", s] for s in args.set), [])])
    if len(set(args.workers)) < 2:
        p.error("timing compares two or more distinct --workers counts")
    return train_once(args) if args.child else timing(args, argv)


if __name__ == "__main__":
    sys.exit(main())
