"""Open-loop load test of the Serve app side by side with a no-op Serve app (Ray Serve's own floor here).

    python jobs/bench_serve.py --artifacts out/demo                     # known 50 and 70 QPS vs the no-op; cold 20 QPS
    python jobs/bench_serve.py --artifacts out/demo --capacity --kill-replica --stalled 200 --text-qps 10
    python jobs/bench_serve.py --artifacts out/demo --variants "haproxy;proxy:INTERESTREC_INGRESS=proxy"
    python jobs/bench_serve.py --artifacts out/demo --store redis        # the Redis backend (a local server)

Two apps, each started in its own fresh process with its own local Ray (``_serve_apps``): ``app`` (the
recommender: ``POST /recommend {user_id, k=10}``, a fifth of the users with fresh events in the store) and
``noop`` (a FastAPI ingress that answers the same route with a fixed body; same replicas and CPUs per
replica), alternating for ``--rounds`` rounds (the order flipped every other round), medians. Each child
offers every rate of ``--rates`` on the known-user path (the no-op gets the same offered rate), then, in the
app, the cold paths (``cold``: a 5-item history at ``--cold-qps``; ``cold_text``: with a text, encoded by
the encoder deployment, at ``--text-qps``), then ``--capacity`` steps, ``--stalled`` (the first rate again while
that many connections stall mid-body, both apps) and ``--kill-replica``. Both apps run behind the shipped
ingress (HAProxy, :mod:`interestrec.serving.ingress`) unless a variant's environment says otherwise. Requests are
Poisson arrivals whatever the answers do (an open loop), latency counts from the scheduled send time; the
load generator runs on this machine. ``--variants`` repeats both apps under other Serve settings (name:
ENV=VALUE,...). In-process calls on ``RecommenderService`` (one caller, no Serve) are printed for scale.
The last line (the default run): ``known_p99_ms=<x> noop_p99_ms=<y> ratio=<x/y> cold_p99_ms=<z> errors=<n>``
at the first rate, for the first variant.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

import _bench
import _services
from _serve_load import cpu_seconds, in_process, open_loop, payloads, replica_pids, stalled_clients

ROOT = Path(__file__).resolve().parents[1]
SETTING_KEYS = {"replicas": "recommender_replicas", "batch": "max_batch_size", "wait_ms": "batch_wait_timeout_s",
                "ongoing": "max_ongoing_requests"}
CAPACITY_STEPS = (50, 75, 100, 150, 200, 300)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--artifacts", required=True, help="pipeline output or publish/vN directory")
    p.add_argument("--rates", default="50,70", help="known-user offered rates (QPS), each also offered to the no-op")
    p.add_argument("--cold-qps", type=float, default=20.0)
    p.add_argument("--text-qps", type=float, default=0.0, help="cold_text rate (0 = skip; it loads the encoder)")
    p.add_argument("--seconds", type=float, default=20.0, help="measured seconds per phase (after the warm-up)")
    p.add_argument("--warmup", type=float, default=3.0, help="seconds offered before each measured window (both apps)")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--store", default="sqlite", help="'sqlite' (a temp file), 'redis' (a local redis-server) or a URL")
    p.add_argument("--setting", default="replicas=2,batch=16,wait_ms=0,ongoing=256",
                   help="the app's Serve settings (keys: replicas, batch, wait_ms, ongoing)")
    p.add_argument("--variants", default="haproxy", help="';'-separated NAME[:ENV=VALUE,...] run for both apps")
    p.add_argument("--capacity", action="store_true", help="step the known rate up: highest with p99 < 100 ms")
    p.add_argument("--kill-replica", action="store_true", help="kill one recommender replica mid-run (app)")
    p.add_argument("--stalled", type=int, default=0,
                   help="also offer the first rate while this many connections stall mid-body (both apps)")
    p.add_argument("--cpus", type=int, default=os.cpu_count() or 2)
    p.add_argument("--seed", type=int, default=0)
    _bench.add_child_flag(p)
    a = p.parse_args(argv)
    if not 0 < a.seconds <= 600 or not 0 <= a.warmup <= 60 or min(a.cold_qps, a.text_qps) < 0:
        p.error("--seconds in (0, 600], --warmup in [0, 60], rates >= 0")
    a.rate_list = [float(r) for r in a.rates.split(",") if r.strip()]
    a.setting_map = parse_setting(a.setting)
    a.variant_env = parse_variants(a.variants)
    return a


def parse_setting(text: str) -> dict:
    """``replicas=2,batch=16,wait_ms=0,ongoing=256`` → ServeConfig fields."""
    out = {}
    for part in text.split(","):
        k, _, v = part.strip().partition("=")
        if k not in SETTING_KEYS:
            raise SystemExit(f"unknown setting '{k}' (known: {sorted(SETTING_KEYS)})")
        out[SETTING_KEYS[k]] = float(v) / 1e3 if k == "wait_ms" else int(v)
    return out


def parse_variants(text: str) -> dict[str, dict[str, str]]:
    """``default;haproxy:RAY_SERVE_ENABLE_HA_PROXY=1`` → ``{name: {ENV: VALUE}}`` (in order)."""
    out = {}
    for part in (p.strip() for p in text.split(";") if p.strip()):
        name, _, env = part.partition(":")
        out[name] = dict(kv.split("=", 1) for kv in env.split(",") if kv.strip())
    return out


def kill_one_replica(delay_after_measure: float):
    """A coroutine factory: kill one Recommender replica ``delay`` s into the measured window; returns recovery s."""
    import time

    import ray

    async def run(t_measure: float) -> dict:
        await asyncio.sleep(max(t_measure + delay_after_measure - time.perf_counter(), 0))

        def replicas() -> list[dict]:  # off the event loop: the load generator keeps its schedule
            return [a for a in ray.util.list_named_actors(all_namespaces=True) if "#Recommender#" in a["name"]]

        names = await asyncio.to_thread(replicas)
        victim, before = names[0], len(names)
        handle = await asyncio.to_thread(ray.get_actor, victim["name"], victim["namespace"])
        t_kill = time.perf_counter()
        await asyncio.to_thread(ray.kill, handle, no_restart=True)
        while time.perf_counter() - t_kill < 120:
            await asyncio.sleep(0.25)
            live = {a["name"] for a in await asyncio.to_thread(replicas)}
            if len(live) >= before and victim["name"] not in live:
                return {"replaced_s": time.perf_counter() - t_kill}
        return {"replaced_s": float("nan")}

    return run


def seed_events(base: str, token: str, users: np.ndarray, items: np.ndarray, rng: np.random.Generator) -> None:
    """Fresh events for a fifth of the users, so known requests fold real stored state."""
    import httpx

    for u in users[::5]:
        httpx.post(f"{base}/events", timeout=30, headers={"Authorization": f"Bearer {token}"}, json={
            "user_id": int(u), "idempotency_key": f"seed-{u}",
            "events": [{"item_id": int(i), "event": "click"} for i in rng.choice(items, 3, replace=False)]}).raise_for_status()


def child(args: argparse.Namespace) -> int:
    """One app (``noop@variant`` or ``app@variant``) in this fresh process: every phase, then one result line."""
    import ray
    from ray import serve

    import _serve_apps
    from interestrec.recommend.service import RecommenderService

    kind = args.child.split("@")[0]
    rng = np.random.default_rng(args.seed)
    service = RecommenderService(args.artifacts)
    bodies = {k: payloads(k, service.user_ids, service.item_ids, rng, 4000) for k in ("known", "cold", "cold_text")}
    port = _services.free_port()
    base = f"http://127.0.0.1:{port}"
    store = args.store if args.store != "sqlite" else f"sqlite://{tempfile.mkdtemp(prefix='bench-serve-')}/events.db"
    token = _serve_apps.start(kind, args.artifacts, store, args.setting_map, args.cpus, port, bool(args.text_qps))
    out: dict = {"rates": {}, "cold": {}, "capacity": None, "kill": None, "stalled": None}
    try:
        if kind == "app":
            seed_events(base, token, service.user_ids, service.item_ids, rng)
        pids = replica_pids()
        for n, rate in enumerate(args.rate_list):
            cpu = cpu_seconds(pids)
            res = asyncio.run(open_loop(f"{base}/recommend", {"known": (rate, bodies["known"])}, args.warmup,
                                        args.seconds, args.seed + n))
            per_request = 1e3 * (cpu_seconds(pids) - cpu) / (rate * (args.warmup + args.seconds))  # offered
            out["rates"][str(rate)] = {**res["known"], "codes": res["_codes"], "cpu_ms": per_request}
        cold = {k: (r, bodies[k]) for k, r in (("cold", args.cold_qps), ("cold_text", args.text_qps)) if r > 0}
        if kind == "app" and cold:
            res = asyncio.run(open_loop(f"{base}/recommend", cold, args.warmup, args.seconds, args.seed + 50))
            out["cold"] = {k: {**res[k], "offered": cold[k][0]} for k in cold}
        if args.capacity:
            best = 0.0
            for rate in CAPACITY_STEPS:
                s = asyncio.run(open_loop(f"{base}/recommend", {"known": (rate, bodies["known"])}, 2.0,
                                          min(args.seconds, 10.0), args.seed + rate))["known"]
                if s["p99"] >= 100 or s["errors"]:
                    break
                best = float(rate)
            out["capacity"] = best
        if args.stalled:
            rate = args.rate_list[0]
            res = asyncio.run(open_loop(f"{base}/recommend", {"known": (rate, bodies["known"])}, args.warmup,
                                        args.seconds, args.seed + 77,
                                        on_start=stalled_clients(port, args.stalled, args.seconds)))
            out["stalled"] = {**res["known"], "codes": res["_codes"], **(res["_extra"] or {})}
        if args.kill_replica and kind == "app":
            rate = args.rate_list[0]
            res = asyncio.run(open_loop(f"{base}/recommend", {"known": (rate, bodies["known"])}, args.warmup,
                                        max(args.seconds, 60.0), args.seed + 99, on_start=kill_one_replica(5.0)))
            out["kill"] = {**res["known"], "codes": res["_codes"], **(res["_extra"] or {})}
    finally:
        serve.shutdown()
        ray.shutdown()
    _bench.emit(out)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        return child(args)
    from interestrec.recommend.service import RecommenderService

    redis_server = None
    if args.store == "redis":
        redis_server = _services.start_redis(tempfile.mkdtemp(prefix="bench-serve-redis-"))
        args.store = redis_server.url
    argv_child = [*(argv if argv is not None else sys.argv[1:]), "--store", args.store]
    names = [f"{kind}@{v}" for v in args.variant_env for kind in ("noop", "app")]
    variants = {n: _bench.Child(__file__, argv_child, env={**os.environ, **args.variant_env[n.split("@")[1]]},
                                timeout_s=1800) for n in names}
    _bench.how_it_ran(f"Serve apps on 127.0.0.1, each in a fresh process with a local Ray of {args.cpus} CPUs; "
                      f"known-user rates {args.rates} QPS offered to both, {args.seconds:.0f} s measured after "
                      f"{args.warmup:.0f} s warm-up; open loop (Poisson) from this machine; setting {args.setting}; "
                      f"{_bench.rounds_text(names, args.rounds)}")
    try:
        runs = _bench.run_rounds(variants, args.rounds, progress=lambda n, r: "p99 " + ", ".join(
            f"{k} QPS {v['p99']:.1f} ms" for k, v in r["rates"].items()))
    finally:
        if redis_server is not None:
            redis_server.stop()
    from interestrec.recommend.config import ServeConfig

    service = RecommenderService(args.artifacts, sim_cache_mb=ServeConfig.sim_cache_mb)  # as a replica holds it
    rng = np.random.default_rng(args.seed)
    local = {k: in_process(service, None, payloads(k, service.user_ids, service.item_ids, rng, 500), 3.0)
             for k in ("known", "cold")}
    return report(args, names, runs, local)


def stat(runs: dict, name: str, *path: str) -> float:
    """The median over rounds of ``result[path[0]][path[1]]...`` of variant ``name``."""
    def get(r: dict) -> float:
        for key in path:
            r = r[key]
        return float(r)
    return _bench.median([get(r) for r in runs[name]])


def report(args: argparse.Namespace, names: list[str], runs: dict, local: dict) -> int:
    """The side-by-side tables and the last line."""
    print("\n| variant | app | offered QPS | p50 ms | p99 ms | served QPS | errors | replicas' CPU ms / request |")
    print("|---|---|---|---|---|---|---|---|")
    for name in names:
        for rate in args.rate_list:
            key = str(rate)
            print(f"| {name.split('@')[1]} | {name.split('@')[0]} | {rate:.0f} | {stat(runs, name, 'rates', key, 'p50'):.1f} | "
                  f"{stat(runs, name, 'rates', key, 'p99'):.1f} | {stat(runs, name, 'rates', key, 'qps'):.1f} | "
                  f"{sum(r['rates'][key]['errors'] for r in runs[name])} | {stat(runs, name, 'rates', key, 'cpu_ms'):.2f} |")
    for name in (n for n in names if n.startswith("app@")):
        for k in runs[name][0]["cold"]:
            print(f"{name} {k} at {runs[name][0]['cold'][k]['offered']:.0f} QPS: p50 {stat(runs, name, 'cold', k, 'p50'):.1f} "
                  f"ms, p99 {stat(runs, name, 'cold', k, 'p99'):.1f} ms, errors {sum(r['cold'][k]['errors'] for r in runs[name])}")
        if args.capacity:
            noop = names[names.index(name) - 1]
            cap, cap0 = stat(runs, name, "capacity"), stat(runs, noop, "capacity")
            print(f"{name} capacity (highest known rate with p99 < 100 ms, 0 errors): {cap:.0f} QPS; no-op {cap0:.0f} "
                  f"QPS; ratio {cap / cap0 if cap0 else float('nan'):.2f}")
        if runs[name][0]["stalled"]:
            rate = args.rate_list[0]
            for app in (names[names.index(name) - 1], name):
                p99, base = stat(runs, app, "stalled", "p99"), stat(runs, app, "rates", str(rate), "p99")
                print(f"{app} with {args.stalled} stalled connections at {rate:.0f} QPS: p99 {p99:.1f} ms (without: "
                      f"{base:.1f} ms, {p99 / base:.2f}x), errors {sum(r['stalled']['errors'] for r in runs[app])}, "
                      f"connections opened {runs[app][0]['stalled']['stalled_opened']}")
        for r in runs[name]:
            if r["kill"]:
                k = r["kill"]
                print(f"{name} replica killed at {args.rate_list[0]:.0f} QPS: {k['errors']} failed of {k['n']} (codes "
                      f"{k['codes']}), p99 {k['p99']:.1f} ms, replacement up {k['replaced_s']:.1f} s after the kill")
    print(f"in-process (one caller, no Serve): known p50 {local['known']['p50']:.1f} / p99 {local['known']['p99']:.1f} ms, "
          f"cold p50 {local['cold']['p50']:.1f} / p99 {local['cold']['p99']:.1f} ms")
    for v in args.variant_env:
        print(f"{v}: app p99 / no-op p99 " + ", ".join(
            f"at {rt:.0f} QPS {stat(runs, f'app@{v}', 'rates', str(rt), 'p99') / stat(runs, f'noop@{v}', 'rates', str(rt), 'p99'):.2f}"
            for rt in args.rate_list))
    first, key = next(iter(args.variant_env)), str(args.rate_list[0])
    known, noop = stat(runs, f"app@{first}", "rates", key, "p99"), stat(runs, f"noop@{first}", "rates", key, "p99")
    cold_kind = "cold_text" if args.text_qps else "cold"
    cold = stat(runs, f"app@{first}", "cold", cold_kind, "p99") if runs[f"app@{first}"][0]["cold"] else float("nan")
    errors = sum(v["errors"] for r in runs[f"app@{first}"] for v in [*r["rates"].values(), *r["cold"].values()])
    _bench.last_line({"known_p99_ms": f"{known:.1f}", "noop_p99_ms": f"{noop:.1f}", "ratio": f"{known / noop:.2f}",
                      "cold_p99_ms": f"{cold:.1f}", "errors": errors})
    return 0


if __name__ == "__main__":
    sys.exit(main())
