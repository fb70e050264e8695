"""Encoder passes on one GPU: fixed 64-text passes vs token-budget passes (``encode.cuda_sub_*``).

    python jobs/bench_encode_cuda.py [--data PATH] [--rounds 3] [--copies 3] [--long 2000]

Needs CUDA (no Ray: this is the replica's inner loop, ``TextEncoder.embed_sorted``). The texts are the
ml-latest-small item texts (``--copies`` times) plus ``--long`` history-like texts of 60 titles that reach
the 256-token limit, tokenised once. Each measurement runs in its own fresh process (model load and a
warm-up pass excluded): (a) 64-text passes, the CPU default; (b) up to ``--rows`` texts and ``--tokens``
padded tokens a pass. Rounds alternate a, b; the last line is the median of the per-round ratios b/a
of tokens per second. Both give the same vectors (max |a - b| printed).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=None, help="ml-latest-small directory (default: the usual locations)")
    p.add_argument("--model", default=None, help="encoder weights directory (default: the packaged model)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--copies", type=int, default=3, help="times the item texts are repeated")
    p.add_argument("--long", type=int, default=2000, help="history-like texts of 60 titles")
    p.add_argument("--rows", type=int, default=1024, help="(b): texts per pass at most")
    p.add_argument("--tokens", type=int, default=65536, help="(b): padded tokens per pass at most")
    p.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)  # internal: TEXTS_JSON ROWS TOKENS
    return p.parse_args(argv)


def worker(texts_path: str, rows: int, tokens: int) -> int:
    """One measurement in this fresh process: JSON line with seconds, tokens and the vectors' path."""
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
    print(json.dumps({"seconds": seconds, "tokens": int(sum(map(len, ids))), "vectors": out}))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        return worker(args.worker[0], int(args.worker[1]), int(args.worker[2]))
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

    print(f"{len(texts)} texts on {torch.cuda.get_device_name()}; (a) 64-text passes, (b) up to {args.rows} "
          f"texts / {args.tokens} padded tokens a pass; each measurement in a fresh process; "
          f"{args.rounds} alternating rounds a, b; medians")

    def measure(rows: int, tokens: int) -> dict:
        r = subprocess.run([sys.executable, __file__, "--worker", path, str(rows), str(tokens)],
                           capture_output=True, text=True, check=True)
        return json.loads(r.stdout.strip().splitlines()[-1])

    ratios, rates = [], {"a": [], "b": []}
    for n in range(args.rounds):
        a, b = measure(64, 0), measure(args.rows, args.tokens)
        ra, rb = a["tokens"] / a["seconds"], b["tokens"] / b["seconds"]
        rates["a"].append(ra)
        rates["b"].append(rb)
        ratios.append(rb / ra)
        diff = float(np.abs(np.load(a["vectors"]) - np.load(b["vectors"])).max())
        print(f"round {n + 1}: (a) {ra / 1e3:.0f}k tokens/s, (b) {rb / 1e3:.0f}k tokens/s, b/a {rb / ra:.2f}, "
              f"max |a - b| {diff:.2e}")
    print(f"median tokens/s: (a) {np.median(rates['a']) / 1e3:.0f}k, (b) {np.median(rates['b']) / 1e3:.0f}k")
    print(f"ratio b/a (median of rounds) = {np.median(ratios):.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
