"""Benchmark: our distributed k-means vs FAISS ``Kmeans`` vs scikit-learn ``KMeans`` (Lloyd), same init.

    python jobs/bench_kmeans.py                      # N=200,000, d=384, K=256, 10 iterations
    python jobs/bench_kmeans.py --size large         # N=1,000,000, d=64, K=1000
    python jobs/bench_kmeans.py --size small         # N=20,000, d=64, K=64 (a quick check)
    python jobs/bench_kmeans.py --n 50000 --d 128 --k 100 --actors 2 --threads 1

Every fit runs in its own fresh Python process (ours starts its own local Ray there; FAISS and
scikit-learn get a process of their own, never one our actors just ran in), the methods alternate for
``--rounds`` rounds (the order flips every round) and each method's median ms/iteration is reported.
Prints ms/iteration, GFLOP/s (2·N·K·d per iteration), the all-reduce share of our iteration and each
method's final inertia relative to scikit-learn's (all inertias recomputed with the same exact
assignment). The last line is ``n=<N> d=<d> k=<K> ours_ms_per_iter=<x> faiss_ms_per_iter=<y>
ours_gflops_over_faiss=<r>`` (medians; ``_bench`` runs the rounds and prints the tables).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import numpy as np

import _bench
import _services

SIZES = {"default": (200_000, 384, 256), "large": (1_000_000, 64, 1000), "small": (20_000, 64, 64)}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", choices=sorted(SIZES), default="default")
    p.add_argument("--n", type=int, help="rows (overrides --size)")
    p.add_argument("--d", type=int, help="dimension (overrides --size)")
    p.add_argument("--k", type=int, help="clusters (overrides --size)")
    p.add_argument("--iters", type=int, default=10)
    p.add_argument("--actors", type=int, default=2)
    p.add_argument("--threads", type=int, default=1, help="BLAS threads per actor")
    p.add_argument("--faiss-threads", type=int, default=2)
    p.add_argument("--chunk-size", type=int, default=16384)
    p.add_argument("--rounds", type=int, default=3, help="alternating rounds (each fit in a fresh process); medians")
    p.add_argument("--skip-sklearn", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    _bench.add_child_flag(p)  # internal: one fit of that method on --data, in this fresh process
    p.add_argument("--data", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def synthetic(n: int, d: int, k: int, seed: int) -> np.ndarray:
    """Planted Gaussian clusters (``2k`` centres, unit noise), float32."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=3.0, size=(2 * k, d)).astype(np.float32)
    x = centres[rng.integers(0, 2 * k, n)]
    x += rng.standard_normal((n, d), dtype=np.float32)
    return x


def run_ours(x, c0, args):
    import ray

    from interestrec.cluster import DistributedKMeans

    _services.start_local_ray(args.actors * args.threads)
    km = DistributedKMeans(args.actors, args.threads, num_cpus=args.threads)
    r = km.fit(x, c0.shape[0], init_centroids=c0, max_iter=args.iters, tol=0, chunk_size=args.chunk_size)
    per_iter = float(np.mean(r.seconds_per_iter))
    share = r.reduce_seconds / float(np.sum(r.seconds_per_iter))
    ray.shutdown()
    return per_iter, r.centroids, r.n_iter, share


def run_faiss(x, c0, args):
    import faiss

    faiss.omp_set_num_threads(args.faiss_threads)
    km = faiss.Kmeans(x.shape[1], c0.shape[0], niter=args.iters, seed=args.seed, verbose=False,
                      max_points_per_centroid=x.shape[0], min_points_per_centroid=1, spherical=False)
    t = time.perf_counter()
    km.train(x, init_centroids=c0)
    iters = max(len(km.obj), 1)  # FAISS stops early when the objective stops changing
    return (time.perf_counter() - t) / iters, np.asarray(km.centroids, dtype=np.float32), iters, None


def run_sklearn(x, c0, args):
    from sklearn.cluster import KMeans
    from threadpoolctl import threadpool_limits

    with threadpool_limits(args.faiss_threads):
        km = KMeans(c0.shape[0], init=c0, n_init=1, max_iter=args.iters, tol=0, algorithm="lloyd")
        t = time.perf_counter()
        km.fit(x)
        dt = time.perf_counter() - t
    return dt / max(km.n_iter_, 1), km.cluster_centers_.astype(np.float32), km.n_iter_, None


RUNNERS = {"ours": run_ours, "faiss": run_faiss, "sklearn": run_sklearn}


def child(args) -> int:
    """One fit in this (fresh) process: reads ``--data`` (x then c0), writes centroids next to it, emits."""
    with np.load(args.data) as z:
        x, c0 = z["x"], z["c0"]
    per_iter, c, iters, share = RUNNERS[args.child](x, c0, args)
    np.save(f"{args.data}.{args.child}.npy", c)
    _bench.emit({"per_iter": per_iter, "iters": int(iters), "share": share})
    return 0


def anchor_env() -> dict[str, str]:
    """Environment for the anchors' processes. FAISS's wheel bundles OpenBLAS 0.3.15, which does not
    recognise recent AVX-512 CPUs and falls back to a generic GEMM kernel (measured here: 1,170 ms/iter
    instead of 310 at N=200k d=384 K=256). Unless the caller chose a core type, an AVX-512 CPU gets
    ``OPENBLAS_CORETYPE=SkylakeX``, as a user tuning FAISS would set it."""
    env = dict(os.environ)
    try:
        with open("/proc/cpuinfo") as f:
            avx512 = " avx512f" in f.read()
    except OSError:
        avx512 = False
    if avx512 and "OPENBLAS_CORETYPE" not in env:
        env["OPENBLAS_CORETYPE"] = "SkylakeX"
    return env


def main(argv: list[str] | None = None) -> int:
    from interestrec.cluster.metrics import inertia

    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if args.child:
        return child(args)
    n, d, k = SIZES[args.size]
    n, d, k = args.n or n, args.d or d, args.k or k
    x = synthetic(n, d, k, args.seed)
    c0 = x[np.sort(np.random.default_rng(args.seed + 1).choice(n, k, replace=False))].copy()
    gflop = 2.0 * n * k * d / 1e9
    methods = ["ours", "faiss"] + ([] if args.skip_sklearn else ["sklearn"])
    core = anchor_env().get("OPENBLAS_CORETYPE")
    _bench.how_it_ran(f"N={n} d={d} K={k} iters={args.iters}; ours {args.actors} actors x {args.threads} thread(s), "
                      f"FAISS/sklearn {args.faiss_threads} threads; every fit in its own fresh process; "
                      + _bench.rounds_text(methods, args.rounds) + " of ms/iter"
                      + (f"; anchors with OPENBLAS_CORETYPE={core} (their bundled OpenBLAS predates this CPU)"
                         if core else ""))
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "data.npz")
        np.savez(data, x=x, c0=c0)
        variants = {m: _bench.Child(__file__, [*argv, "--data", data], env=None if m == "ours" else anchor_env())
                    for m in methods}
        runs = _bench.run_rounds(variants, args.rounds, progress=lambda m, o: (
            f"{1000 * o['per_iter']:.1f} ms/iter, load {os.getloadavg()[0]:.1f}"))
        cents = {m: np.load(f"{data}.{m}.npy") for m in methods}
    inert = {m: inertia(x, c) for m, c in cents.items()}
    base_name = "sklearn" if "sklearn" in inert else "faiss"
    share = _bench.median([o["share"] for o in runs["ours"]])
    print("iterations: " + ", ".join(f"{m} {runs[m][-1]['iters']}" for m in methods)
          + f"; all-reduce share of our iteration {100 * share:.1f}% (median)")
    med = {m: v / 1000 for m, v in _bench.print_rounds("ms/iter", _bench.values(runs, "per_iter", 1000)).items()}
    _bench.print_table(["method", "median ms/iter", "GFLOP/s", f"inertia/{base_name}"],
                       [[m, f"{1000 * med[m]:.1f}", f"{gflop / med[m]:.2f}", f"{inert[m] / inert[base_name]:.6f}"]
                        for m in methods])
    _bench.last_line({"n": n, "d": d, "k": k, "ours_ms_per_iter": f"{1000 * med['ours']:.1f}",
                      "faiss_ms_per_iter": f"{1000 * med['faiss']:.1f}"},
                     ratio=("ours_gflops_over_faiss", med["faiss"] / med["ours"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
