"""Encoder throughput: the bare transformers loop vs the Ray Data pipeline, and users/s of text vs pool mode.

    python jobs/bench_encode.py [--data PATH] [--threads 2] [--actors 1] [--limit 0] [--rounds 2]

The same ml-latest-small item texts are encoded (a) by ``TextEncoder.encode`` in this process with
``--threads`` torch threads and (b) through ``ray_encode.encode_dataset`` (a tokeniser actor feeding
``--actors`` model replicas with ``threads / actors`` torch threads each, the same total). (b) is timed
in steady state (from the first batch's start to the last batch's end inside the replicas; actor
start-up and model loading are reported apart),
(a) without model loading; (a) runs the pipeline's batches (``--batch-size``) in order, each sorted by
length inside, so both do the same padding work. (a) runs in its own fresh Python process every round
(never in the process that drives Ray). Rounds alternate a, b / b, a (``_bench``); the table gives each
round's texts/s and (b)/(a), the best of each is printed too. Before it, the users of ml-latest-small are
encoded in ``pool`` and ``text`` mode. The last line is ``texts=<n> threads=<t> bare_texts_per_s=<a>
ray_data_texts_per_s=<b> ray_data_over_bare=<r>``: medians, ``r`` the median of the per-round ratios
(robust to a busy machine).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

import _bench
import _services
from interestrec.encode.ray_encode import Embed


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=None, help="ml-latest-small directory (default: the usual locations)")
    p.add_argument("--threads", type=int, default=2, help="total torch threads in both (a) and (b)")
    p.add_argument("--actors", type=int, default=1, help="model replicas in (b); threads are split between them")
    p.add_argument("--batch-size", type=int, default=256, help="Ray Data batch size")
    p.add_argument("--sub-batch", type=int, default=64, help="texts per forward pass (both paths)")
    p.add_argument("--limit", type=int, default=0, help="encode only the first N item texts (0 = all)")
    p.add_argument("--rounds", type=int, default=2, help="alternating rounds of (a) and (b)")
    p.add_argument("--skip-users", action="store_true", help="skip the text vs pool users/s part")
    _bench.add_child_flag(p)  # internal: run (a) on --texts in this fresh process
    p.add_argument("--texts", help=argparse.SUPPRESS)
    p.add_argument("--device", default="cpu", help=argparse.SUPPRESS)
    p.add_argument("--peak-tflops", type=float, default=989.0,
                   help="the accelerator's dense bf16/fp16 peak for the FLOP share on a GPU (H100 SXM: 989)")
    return p.parse_args(argv)


def bare(texts: list[str], threads: int, batch_size: int, sub_batch: int, device: str) -> tuple[float, object]:
    """The bare loop: the same ``batch_size`` batches as the pipeline, each sorted by length inside."""
    import numpy as np

    from interestrec.encode.encoder import TextEncoder

    enc = TextEncoder(device=device, num_threads=threads)
    enc.encode(texts[:sub_batch], sub_batch)  # warm-up
    t0 = time.perf_counter()
    vec = np.concatenate([enc.encode(texts[lo : lo + batch_size], sub_batch) for lo in range(0, len(texts), batch_size)])
    return len(texts) / (time.perf_counter() - t0), vec


def bare_child(args: argparse.Namespace) -> int:
    """(a) in this fresh process on the ``--texts`` file; its vectors next to it, its rate emitted."""
    import numpy as np

    with open(args.texts) as f:
        texts = json.load(f)
    rate, vec = bare(texts, args.threads, args.batch_size, args.sub_batch, args.device)
    np.save(args.texts + ".npy", vec)
    _bench.emit({"texts_per_s": rate})
    return 0


class TimedEmbed(Embed):
    """:class:`Embed` that also reports when each batch started and ended (wall clock, in the actor)."""

    def __call__(self, batch: dict) -> dict:
        import numpy as np

        t0 = time.time()
        out = super().__call__(batch)
        n = len(out["vector"])
        out["t0"], out["t1"] = np.full(n, t0), np.full(n, time.time())
        return out


def pipeline(texts: list[str], cfg) -> tuple[float, float, object]:
    """Ray Data texts/s from the first batch's start to the last batch's end in the model replicas.

    Actor start-up and model loading are before that window (returned apart); any stall waiting for
    tokens or for the driver inside it counts against the pipeline.
    """
    import numpy as np

    from interestrec.encode.ray_encode import encode_dataset, text_dataset

    t0 = time.time()
    ids, vecs, starts, ends = [], [], [], []
    ds = encode_dataset(text_dataset(np.arange(len(texts)), texts, cfg.batch_size), cfg, embed_cls=TimedEmbed)
    for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
        ids.append(batch["id"])
        vecs.append(np.stack(batch["vector"]))
        starts.append(batch["t0"].min())
        ends.append(batch["t1"].max())
    first, last = min(starts), max(ends)
    v = np.zeros((len(texts), vecs[0].shape[1]), np.float32)
    v[np.concatenate(ids)] = np.concatenate(vecs)
    return len(texts) / (last - first), first - t0, v


def flops_per_text(texts: list[str]) -> float:
    """Forward FLOPs of the encoder per text: 2 × non-embedding parameters per token + attention scores.

    Uses each text's real token count (no padding), so it is the useful work, a lower bound on what ran.
    """
    import numpy as np

    from interestrec.encode.encoder import TextEncoder

    enc = TextEncoder(device="cpu")
    lens = np.array([len(x) for x in enc.tokenize(texts)], np.float64)
    c = enc.model.config
    params = sum(p.numel() for n, p in enc.model.named_parameters() if "embeddings" not in n)
    per_text = 2 * params * lens + 4 * c.num_hidden_layers * c.hidden_size * lens**2
    return float(per_text.mean())


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        return bare_child(args)
    import numpy as np
    import ray

    from interestrec.data import load_ingest
    from interestrec.data.config import IngestConfig
    from interestrec.data.locate import resolve_data_path
    from interestrec.data.stage import ingest
    from interestrec.encode.config import EncodeConfig
    from interestrec.encode.encoder import TextEncoder
    from interestrec.encode.stage import item_texts, text_user_vectors
    from interestrec.encode.users import known_events, train_user_vectors

    if args.threads % args.actors:
        raise SystemExit("--threads must be a multiple of --actors")
    data = resolve_data_path(args.data, IngestConfig())
    per_actor = args.threads // args.actors
    # logical CPUs: the replicas' threads, the tokeniser's share and the ingest readers
    _services.start_local_ray(args.threads + 1, configure_logging=True,
                           runtime_env={"env_vars": {"TOKENIZERS_PARALLELISM": "false", "PYTHONWARNINGS": "ignore"}})
    ray.data.DataContext.get_current().enable_progress_bars = False
    tmp = tempfile.mkdtemp(prefix="bench-encode-")
    ingest(str(data), IngestConfig(), os.path.join(tmp, "ingest"))
    art = load_ingest(os.path.join(tmp, "ingest"))
    ids, texts = item_texts(art.items)
    if args.limit:
        ids, texts = ids[: args.limit], texts[: args.limit]
    import torch

    gpu = torch.cuda.is_available()
    cfg = EncodeConfig(num_actors=args.actors, num_cpus=per_actor, num_gpus=1.0 if gpu else 0.0,
                       batch_size=args.batch_size, sub_batch=args.sub_batch, device="cuda" if gpu else "cpu")
    src = os.path.join(tmp, "texts.json")
    with open(src, "w") as f:
        json.dump(texts, f)
    _bench.how_it_ran(f"{len(texts)} item texts from {data}; {args.threads} torch threads; {args.actors} replica(s) "
                      f"in (b); (a) in a fresh process each round, (b) in this Ray driver; "
                      + _bench.rounds_text(["a", "b"], args.rounds) + " and median of the per-round ratios")
    vb = []

    def ray_data() -> dict:
        rate, startup, vec = pipeline(texts, cfg)
        vb[:] = [vec]
        return {"texts_per_s": rate, "startup_s": startup}

    a_args = ["--texts", src, "--threads", str(args.threads), "--batch-size", str(args.batch_size),
              "--sub-batch", str(args.sub_batch), "--device", cfg.device]
    runs = _bench.run_rounds({"a": _bench.Child(__file__, a_args), "b": ray_data}, args.rounds, progress=lambda v, r: (
        f"{'(a) bare loop' if v == 'a' else '(b) Ray Data'} {r['texts_per_s']:.1f} texts/s"
        + (f" (steady; start-up {r['startup_s']:.1f}s)" if v == "b" else "")))
    rates = _bench.values(runs, "texts_per_s")
    best_a, best_b = max(rates["a"]), max(rates["b"])
    print(f"max |a - b| over all vectors (last round): {np.abs(np.load(src + '.npy') - vb[0]).max():.2e}")
    f = flops_per_text(texts)
    line = f"useful work {f / 1e6:.1f} MFLOP/text: (a) {best_a * f / 1e9:.1f} GFLOP/s, (b) {best_b * f / 1e9:.1f} GFLOP/s"
    if cfg.device == "cuda":
        line += f"; share of the {args.peak_tflops:g} TFLOP/s peak: {best_b * f / (args.peak_tflops * 1e12):.1%}"
    print(line)

    if not args.skip_users:
        ev, _ = known_events(art.events, ids)
        train = ev[ev.split == "train"]
        t0 = time.perf_counter()
        users, *_ = train_user_vectors(train, ids, vb[0][: len(ids)], cfg)
        pool_s = time.perf_counter() - t0
        tok = TextEncoder(device="cpu")
        t0 = time.perf_counter()
        rows = text_user_vectors([(-1, train)], texts, tok, cfg)
        text_s = time.perf_counter() - t0
        print(f"users/s pool mode: {len(users) / pool_s:.1f} ({len(users)} users in {pool_s:.2f}s, incl. interests)")
        print(f"users/s text mode: {rows.num_rows / text_s:.1f} ({rows.num_rows} users in {text_s:.2f}s, "
              f"{cfg.max_tokens}-token histories, incl. actor start-up)")
    print(f"best of {args.rounds}: (a) bare {best_a:.1f} texts/s, (b) Ray Data {best_b:.1f} texts/s "
          f"(ratio of bests {best_b / best_a:.3f})")
    ratios = [b / a for a, b in zip(rates["a"], rates["b"])]
    med = _bench.print_rounds("texts/s", rates)
    ratio = _bench.print_rounds("ratio", {"b/a": ratios}, digits=3)["b/a"]
    _bench.last_line({"texts": len(texts), "threads": args.threads, "bare_texts_per_s": f"{med['a']:.1f}",
                      "ray_data_texts_per_s": f"{med['b']:.1f}"}, ratio=("ray_data_over_bare", ratio))
    return 0


if __name__ == "__main__":
    sys.exit(main())
