"""Encoder passes on one GPU: fixed 64-text passes vs token-budget passes (``encode.cuda_sub_*``).

    python jobs/bench_encode_cuda.py [--data PATH] [--rounds 3] [--copies 3] [--long 2000]

Needs CUDA (no Ray: this is the replica's inner loop, ``TextEncoder.embed_sorted``). The texts are the
ml-latest-small item texts (``--copies`` times) plus ``--long`` history-like texts of 60 titles that reach
the 256-token limit, tokenised once. Each measurement runs in its own fresh process (model load and a
warm-up pass excluded): (a) 64-text passes, the CPU default; (b) up to ``--rows`` texts and ``--tokens``
padded tokens a pass. Rounds alternate a, b / b, a (``_bench``); the tables give each round's tokens/s and
b/a. The last line is ``texts=<n> a_ktokens_per_s=<x> b_ktokens_per_s=<y> ratio_b_over_a=<r>`` (medians;
``r`` the median of the per-round ratios). Both give the same vectors (max |a - b| printed).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile

import _bench


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=None, help="ml-latest-small directory (default: the usual locations)")
    p.add_argument("--model", default=None, help="encoder weights directory (default: the packaged model)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--copies", type=int, default=3, help="times the item texts are repeated")
    p.add_argument("--long", type=int, default=2000, help="history-like texts of 60 titles")
    p.add_argument("--rows", type=int, default=1024, help="(b): texts per pass at most")
    p.add_argument("--tokens", type=int, default=65536, help="(b): padded tokens per pass at most")
    _bench.add_child_flag(p)  # internal: measure 'a' or 'b' on --texts in this fresh process
    p.add_argument("--texts", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def worker(texts_path: str, rows: int, tokens: int) -> int:
    """One measurement in this fresh process: emits seconds, tokens and the vectors' path."""
    import time

    import numpy as np
    import torch

    from interestrec.encode.encoder import TextEncoder

    with open(texts_path) as f:
        spec = json.load(f)
    enc = TextEncoder(spec["model"], device="cuda", max_length=256, cuda_rows=rows, cuda_tokens=tokens or None)
    ids = enc.tokenize(spec["texts"])
    enc.embed_sorted(ids[:2048], 64)  # warm-up: kernels, allocator
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    vec = enc.embed_sorted(ids, 64)
    torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    out = f"{texts_path}.{rows}.{tokens}.npy"
    np.save(out, vec)
    _bench.emit({"seconds": seconds, "tokens": int(sum(map(len, ids))), "vectors": out})
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if args.child:
        return worker(args.texts, *((64, 0) if args.child == "a" else (args.rows, args.tokens)))
    import numpy as np
    import pandas as pd

    from interestrec.data.config import IngestConfig
    from interestrec.data.locate import resolve_data_path
    from interestrec.encode.text import item_text

    data = resolve_data_path(args.data, IngestConfig())
    movies = pd.read_csv(os.path.join(str(data), "movies.csv"))
    items = [item_text(t, None, g.split("|")) for t, g in zip(movies["title"], movies["genres"])]
    rng = np.random.default_rng(0)
    texts = items * args.copies + ["; ".join(rng.choice(items, 60)) for _ in range(args.long)]
    tmp = tempfile.mkdtemp(prefix="bench-encode-cuda-")
    path = os.path.join(tmp, "texts.json")
    with open(path, "w") as f:
        json.dump({"model": args.model, "texts": texts}, f)
    import torch

    _bench.how_it_ran(f"{len(texts)} texts on {torch.cuda.get_device_name()}; (a) 64-text passes, (b) up to {args.rows} "
                      f"texts / {args.tokens} padded tokens a pass; each measurement in a fresh process; "
                      + _bench.rounds_text(["a", "b"], args.rounds))
    child = _bench.Child(__file__, [*argv, "--texts", path])
    runs = _bench.run_rounds({"a": child, "b": child}, args.rounds, progress=lambda v, r: (
        f"{r['tokens'] / r['seconds'] / 1e3:.0f}k tokens/s"))
    rates = {v: [r["tokens"] / r["seconds"] / 1e3 for r in rs] for v, rs in runs.items()}
    diff = float(np.abs(np.load(runs["a"][-1]["vectors"]) - np.load(runs["b"][-1]["vectors"])).max())
    print(f"max |a - b| over all vectors: {diff:.2e}")
    med = _bench.print_rounds("k tokens/s", rates, digits=0)
    ratio = _bench.print_rounds("ratio", {"b/a": [b / a for a, b in zip(rates["a"], rates["b"])]}, digits=2)["b/a"]
    _bench.last_line({"texts": len(texts), "a_ktokens_per_s": f"{med['a']:.0f}", "b_ktokens_per_s": f"{med['b']:.0f}"},
                     ratio=("ratio_b_over_a", ratio), digits=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
