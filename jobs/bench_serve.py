"""Load test of the Serve app: N concurrent clients on 127.0.0.1 for T seconds, per path, vs. in-process calls.

    python jobs/bench_serve.py --artifacts out/demo [--known-clients 50] [--cold-clients 10] [--seconds 15]

Paths: ``known`` (POST /recommend {user_id, k=10}), ``cold`` (POST /recommend {history of 5 items}),
``cold_text`` (the same plus a short text, encoded by the batched encoder). For each: p50/p95/p99
latency, QPS and error rate over HTTP, and the same calls made in-process on
``RecommenderService`` without Serve (single caller), so the difference is Serve's overhead. The load
generator runs on the same machine as the app. Last line:
``known_p99_ms=<x> cold_p99_ms=<y> errors=<n>``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
MAX_CLIENTS, MAX_SECONDS = 500, 300
TEXTS = ("space adventure with robots", "a quiet romantic comedy in paris", "gritty crime thriller", "animated family film")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--artifacts", required=True, help="pipeline output or publish/vN directory")
    p.add_argument("--known-clients", type=int, default=50)
    p.add_argument("--cold-clients", type=int, default=10)
    p.add_argument("--seconds", type=float, default=15.0, help="measured seconds per path (after a warm-up)")
    p.add_argument("--warmup", type=float, default=3.0)
    p.add_argument("--think-ms", type=float, default=0.0,
                   help="pause of each client between its requests (0 = closed loop at saturation)")
    p.add_argument("--replicas", type=int, default=0, help="fixed recommender replicas (0 = autoscaling)")
    p.add_argument("--no-text", action="store_true", help="skip the cold_text path")
    p.add_argument("--port", type=int, default=0, help="HTTP port on 127.0.0.1 (0 = a free one)")
    p.add_argument("--cpus", type=int, default=os.cpu_count() or 2)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    for name in ("known_clients", "cold_clients"):
        if not 1 <= getattr(a, name) <= MAX_CLIENTS:
            p.error(f"--{name.replace('_', '-')} must be in [1, {MAX_CLIENTS}]")
    if not 0 < a.seconds <= MAX_SECONDS or not 0 <= a.warmup <= MAX_SECONDS:
        p.error(f"--seconds must be in (0, {MAX_SECONDS}] and --warmup in [0, {MAX_SECONDS}]")
    return a


def stats(lat: list[float], errors: int, seconds: float) -> dict:
    """p50/p95/p99 (ms), QPS and error rate of one run."""
    x = np.asarray(lat) * 1e3 if lat else np.zeros(1)
    n = len(lat) + errors
    return {"n": n, "p50": float(np.percentile(x, 50)), "p95": float(np.percentile(x, 95)),
            "p99": float(np.percentile(x, 99)), "qps": len(lat) / seconds, "errors": errors,
            "error_rate": errors / max(n, 1)}


def payloads(kind: str, users: np.ndarray, items: np.ndarray, rng: np.random.Generator, n: int) -> list[dict]:
    if kind == "known":
        return [{"user_id": int(u), "k": 10} for u in rng.choice(users, n)]
    out = []
    for _ in range(n):
        body = {"history": [{"item_id": int(i), "event": "rate"} for i in rng.choice(items, 5, replace=False)], "k": 10}
        if kind == "cold_text":
            body["text"] = TEXTS[int(rng.integers(len(TEXTS)))]
        out.append(body)
    return out


async def http_load(url: str, bodies: list[dict], clients: int, warmup: float, seconds: float, think_s: float = 0.0) -> dict:
    """``clients`` concurrent loops POSTing ``bodies`` round-robin (pausing ``think_s`` after each answer);
    latencies of the measured window only."""
    import httpx

    lat: list[float] = []
    errors = 0
    t_start = time.perf_counter()
    t_measure, t_end = t_start + warmup, t_start + warmup + seconds

    async def client(c: int, http: httpx.AsyncClient) -> None:
        nonlocal errors
        j = c
        while time.perf_counter() < t_end:
            t0 = time.perf_counter()
            try:
                ok = (await http.post(url, json=bodies[j % len(bodies)])).status_code == 200
            except httpx.HTTPError:
                ok = False
            t1 = time.perf_counter()
            if t0 >= t_measure:
                if ok:
                    lat.append(t1 - t0)
                else:
                    errors += 1
            j += clients
            if think_s:
                await asyncio.sleep(think_s)

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(timeout=30, limits=limits) as http:
        await asyncio.gather(*(client(c, http) for c in range(clients)))
    return stats(lat, errors, seconds)


def in_process(service, encoder, bodies: list[dict], seconds: float) -> dict:
    """The same calls on the library service directly, one caller, no Serve or HTTP."""
    lat: list[float] = []
    t_end = time.perf_counter() + seconds
    j = 0
    while time.perf_counter() < t_end:
        b = bodies[j % len(bodies)]
        t0 = time.perf_counter()
        if "user_id" in b:
            service.recommend(b["user_id"], b["k"])
        else:
            tv = encoder.encode([b["text"]])[0] if "text" in b else None
            service.recommend_history(b["history"], b["k"], tv)
        lat.append(time.perf_counter() - t0)
        j += 1
    return stats(lat, 0, seconds)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import ray
    from ray import serve

    from interestrec.encode.encoder import TextEncoder
    from interestrec.recommend.service import RecommenderService

    sys.path.insert(0, str(ROOT))
    from serving.app import build_app

    rng = np.random.default_rng(args.seed)
    t0 = time.perf_counter()
    service = RecommenderService(args.artifacts)
    print(f"[bench_serve] loaded {args.artifacts} (version {service.version}: {len(service.user_ids)} users, "
          f"{len(service.item_ids)} items) in {time.perf_counter() - t0:.1f}s", flush=True)
    kinds = [("known", args.known_clients), ("cold", args.cold_clients)] + ([] if args.no_text else [("cold_text", args.cold_clients)])
    bodies = {k: payloads(k, service.user_ids, service.item_ids, rng, 2000) for k, _ in kinds}

    encoder = None if args.no_text else TextEncoder(None, device="auto", max_length=128, num_threads=1)
    local = {k: in_process(service, encoder, bodies[k], min(args.seconds, 5.0)) for k, _ in kinds}

    port = args.port
    if port == 0:
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
    os.environ.setdefault("RAY_SERVE_PROXY_READY_CHECK_TIMEOUT_S", "60")  # a loaded machine starts the proxy slowly
    ray.init(address="local", num_cpus=args.cpus, include_dashboard=False, log_to_driver=False, configure_logging=False)
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    import tempfile

    spec = {"artifacts": args.artifacts, "event_log": tempfile.mkdtemp(prefix="bench-serve-log-")}  # no events posted
    if args.replicas:
        spec["recommender_replicas"] = args.replicas
    serve.run(build_app(spec), name="interestrec", route_prefix="/")
    url = f"http://127.0.0.1:{port}/recommend"
    served = {}
    try:
        for kind, clients in kinds:
            served[kind] = asyncio.run(http_load(url, bodies[kind], clients, args.warmup, args.seconds, args.think_ms / 1e3))
            print(f"[bench_serve] {kind}: done", flush=True)
    finally:
        serve.shutdown()
        ray.shutdown()

    print(f"\nmachine: {os.cpu_count()} CPUs; {args.seconds:.0f}s per path after {args.warmup:.0f}s warm-up; "
          f"think time {args.think_ms:.0f} ms per client; load generator on the same machine")
    print("| path | clients | p50 ms | p95 ms | p99 ms | QPS | errors | in-process p50 ms | in-process p99 ms | in-process QPS (1 caller) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for kind, clients in kinds:
        s, lo = served[kind], local[kind]
        print(f"| {kind} | {clients} | {s['p50']:.1f} | {s['p95']:.1f} | {s['p99']:.1f} | {s['qps']:.0f} | "
              f"{s['errors']} ({100 * s['error_rate']:.2f}%) | {lo['p50']:.1f} | {lo['p99']:.1f} | {lo['qps']:.0f} |")
    errors = sum(s["errors"] for s in served.values())
    print(f"known_p99_ms={served['known']['p99']:.1f} cold_p99_ms={served['cold']['p99']:.1f} errors={errors}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
