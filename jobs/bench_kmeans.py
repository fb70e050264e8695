"""Benchmark: our distributed k-means vs FAISS ``Kmeans`` vs scikit-learn ``KMeans`` (Lloyd), same init.

    python jobs/bench_kmeans.py                      # N=200,000, d=384, K=256, 10 iterations
    python jobs/bench_kmeans.py --size large         # N=1,000,000, d=64, K=1000
    python jobs/bench_kmeans.py --size small         # N=20,000, d=64, K=64 (a quick check)
    python jobs/bench_kmeans.py --n 50000 --d 128 --k 100 --actors 2 --threads 1

Prints ms/iteration, GFLOP/s (2·N·K·d per iteration), the all-reduce share of our iteration and each
method's final inertia relative to scikit-learn's (all inertias recomputed with the same exact
assignment). The last line is our GFLOP/s ÷ FAISS's.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

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
    p.add_argument("--repeats", type=int, default=1, help="alternate ours/FAISS this many times, keep the best")
    p.add_argument("--skip-sklearn", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def synthetic(n: int, d: int, k: int, seed: int) -> np.ndarray:
    """Planted Gaussian clusters (``2k`` centres, unit noise), float32."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=3.0, size=(2 * k, d)).astype(np.float32)
    x = centres[rng.integers(0, 2 * k, n)]
    x += rng.standard_normal((n, d), dtype=np.float32)
    return x


def run_ours(x, c0, args):
    from interestrec.cluster import DistributedKMeans

    km = DistributedKMeans(args.actors, args.threads, num_cpus=args.threads)
    r = km.fit(x, c0.shape[0], init_centroids=c0, max_iter=args.iters, tol=0, chunk_size=args.chunk_size)
    per_iter = float(np.mean(r.seconds_per_iter))
    share = r.reduce_seconds / float(np.sum(r.seconds_per_iter))
    return per_iter, r.centroids, share, r.n_iter


def run_faiss(x, c0, args):
    import faiss

    faiss.omp_set_num_threads(args.faiss_threads)
    km = faiss.Kmeans(x.shape[1], c0.shape[0], niter=args.iters, seed=args.seed, verbose=False,
                      max_points_per_centroid=x.shape[0], min_points_per_centroid=1, spherical=False)
    t = time.perf_counter()
    km.train(x, init_centroids=c0)
    iters = max(len(km.obj), 1)  # FAISS stops early when the objective stops changing
    return (time.perf_counter() - t) / iters, np.asarray(km.centroids, dtype=np.float32), iters


def run_sklearn(x, c0, args):
    from sklearn.cluster import KMeans
    from threadpoolctl import threadpool_limits

    with threadpool_limits(args.faiss_threads):
        km = KMeans(c0.shape[0], init=c0, n_init=1, max_iter=args.iters, tol=0, algorithm="lloyd")
        t = time.perf_counter()
        km.fit(x)
        dt = time.perf_counter() - t
    return dt / max(km.n_iter_, 1), km.cluster_centers_.astype(np.float32), km.n_iter_


def main(argv: list[str] | None = None) -> int:
    import ray

    from interestrec.cluster.metrics import inertia

    args = parse_args(argv)
    n, d, k = SIZES[args.size]
    n, d, k = args.n or n, args.d or d, args.k or k
    x = synthetic(n, d, k, args.seed)
    c0 = x[np.sort(np.random.default_rng(args.seed + 1).choice(n, k, replace=False))].copy()
    gflop = 2.0 * n * k * d / 1e9
    print(f"N={n} d={d} K={k} iters={args.iters}; ours {args.actors} actors x {args.threads} thread(s), "
          f"FAISS/sklearn {args.faiss_threads} threads; {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}")

    ray.init(address="local", num_cpus=args.actors * args.threads, include_dashboard=False,
             log_to_driver=False, configure_logging=False)
    best_ours, best_faiss = float("inf"), float("inf")
    for _ in range(args.repeats):
        t_ours, c_ours, share, it_ours = run_ours(x, c0, args)
        best_ours = min(best_ours, t_ours)
        t_faiss, c_faiss, it_faiss = run_faiss(x, c0, args)
        best_faiss = min(best_faiss, t_faiss)
    ray.shutdown()

    rows = [("ours", best_ours, c_ours), ("faiss", best_faiss, c_faiss)]
    if not args.skip_sklearn:
        t_sk, c_sk, it_sk = run_sklearn(x, c0, args)
        rows.append(("sklearn", t_sk, c_sk))
    inert = {name: inertia(x, c) for name, _, c in rows}
    base = inert.get("sklearn", inert["faiss"])
    base_name = "sklearn" if "sklearn" in inert else "faiss"
    print(f"{'method':8s} {'ms/iter':>10s} {'GFLOP/s':>9s} {'inertia/' + base_name:>16s}")
    for name, t, _ in rows:
        print(f"{name:8s} {1000 * t:10.1f} {gflop / t:9.2f} {inert[name] / base:16.6f}")
    its = f"iterations: ours {it_ours}, faiss {it_faiss}" + ("" if args.skip_sklearn else f", sklearn {it_sk}")
    print(f"{its}; all-reduce share of our iteration {100 * share:.1f}%")
    print(f"ours GFLOP/s / FAISS GFLOP/s = {best_faiss / best_ours:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
