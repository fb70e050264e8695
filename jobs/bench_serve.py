"""Open-loop load test of the Serve app: Poisson arrivals at a fixed rate per path, vs. in-process calls.

    python jobs/bench_serve.py --artifacts out/demo                       # default: 50 QPS known + 20 QPS cold
    python jobs/bench_serve.py --artifacts out/demo --store redis          # the Redis backend (a local server)
    python jobs/bench_serve.py --artifacts out/demo --settings "replicas=1,batch=1;replicas=2,batch=16"
    python jobs/bench_serve.py --artifacts out/demo --capacity --kill-replica --text-qps 10

Paths: ``known`` (POST /recommend {user_id, k=10}; a fifth of the users have fresh events in the store),
``cold`` (POST /recommend {history of 5 items}), ``cold_text`` (the same plus a short text, encoded by the
batched encoder deployment). Requests are sent at exponentially distributed intervals whatever the
answers do (an open loop: a slow server meets the same offered rate), and latency counts from the
scheduled send time, so queueing in the client is charged to the server. For each path: p50/p95/p99,
served QPS and errors over HTTP, and the same calls made in-process on ``RecommenderService`` (one caller,
no Serve). ``--capacity`` steps the known-user rate up and reports the highest with p99 < 100 ms;
``--kill-replica`` kills one recommender replica mid-run at the known rate. The load generator runs on
the same machine as the app. Last line (the default run): ``known_p99_ms=<x> cold_p99_ms=<y> errors=<n>``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import _bench
import _services
from _serve_load import in_process, open_loop, payloads

ROOT = Path(__file__).resolve().parents[1]
SETTING_KEYS = {"replicas": "recommender_replicas", "batch": "max_batch_size", "wait_ms": "batch_wait_timeout_s",
                "ongoing": "max_ongoing_requests"}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--artifacts", required=True, help="pipeline output or publish/vN directory")
    p.add_argument("--known-qps", type=float, default=50.0)
    p.add_argument("--cold-qps", type=float, default=20.0)
    p.add_argument("--text-qps", type=float, default=0.0, help="cold_text rate (0 = skip; it loads the encoder)")
    p.add_argument("--seconds", type=float, default=20.0, help="measured seconds (after the warm-up)")
    p.add_argument("--warmup", type=float, default=3.0)
    p.add_argument("--store", default="sqlite", help="'sqlite' (a temp file), 'redis' (a local redis-server) or a URL")
    p.add_argument("--settings", default="replicas=2,batch=16,wait_ms=2,ongoing=64",
                   help="';'-separated settings to measure one after another (keys: replicas, batch, wait_ms, ongoing)")
    p.add_argument("--capacity", action="store_true", help="step the known rate up to find the capacity")
    p.add_argument("--kill-replica", action="store_true", help="kill one recommender replica mid-run")
    p.add_argument("--cpus", type=int, default=os.cpu_count() or 2)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    if not 0 < a.seconds <= 600 or not 0 <= a.warmup <= 60 or min(a.known_qps, a.cold_qps, a.text_qps) < 0:
        p.error("--seconds in (0, 600], --warmup in [0, 60], rates >= 0")
    a.settings_list = [parse_setting(s) for s in a.settings.split(";") if s.strip()]
    return a


def parse_setting(text: str) -> dict:
    """``replicas=2,batch=16,wait_ms=2,ongoing=64`` → ServeConfig fields."""
    out = {}
    for part in text.split(","):
        k, _, v = part.strip().partition("=")
        if k not in SETTING_KEYS:
            raise SystemExit(f"unknown setting '{k}' (known: {sorted(SETTING_KEYS)})")
        out[SETTING_KEYS[k]] = float(v) / 1e3 if k == "wait_ms" else int(v)
    return out


def start_store(spec: str, tmp: str):
    """A store URL for ``spec`` (and the :class:`_services.LocalRedis` when one was started here)."""
    if spec == "sqlite":
        return f"sqlite://{tmp}/events.db", None
    if spec != "redis":
        return spec, None
    server = _services.start_redis(tmp)
    return server.url, server


def kill_one_replica(delay_after_measure: float):
    """A coroutine factory: kill one Recommender replica ``delay`` s into the measured window; returns recovery s."""
    import ray

    async def run(t_measure: float) -> dict:
        await asyncio.sleep(max(t_measure + delay_after_measure - time.perf_counter(), 0))
        def replicas() -> list[dict]:  # off the event loop: the load generator keeps its schedule
            return [a for a in ray.util.list_named_actors(all_namespaces=True) if "#Recommender#" in a["name"]]

        names = await asyncio.to_thread(replicas)
        victim = names[0]
        before = len(names)
        handle = await asyncio.to_thread(ray.get_actor, victim["name"], victim["namespace"])
        t_kill = time.perf_counter()
        await asyncio.to_thread(ray.kill, handle, no_restart=True)
        while time.perf_counter() - t_kill < 120:
            await asyncio.sleep(0.25)
            live = {a["name"] for a in await asyncio.to_thread(replicas)}
            if len(live) >= before and victim["name"] not in live:
                return {"replaced_s": time.perf_counter() - t_kill, "t_kill_rel": t_kill - t_measure}
        return {"replaced_s": float("nan"), "t_kill_rel": t_kill - t_measure}

    return run


def table(rows: list[tuple[str, str, dict, dict | None]]) -> None:
    print("| setting | path | offered QPS | p50 ms | p95 ms | p99 ms | served QPS | errors | in-process p50 ms | in-process p99 ms | in-process QPS (1 caller) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for setting, kind, s, lo in rows:
        loc = f"{lo['p50']:.1f} | {lo['p99']:.1f} | {lo['qps']:.0f}" if lo else "| |"
        print(f"| {setting} | {kind} | {s['offered']:.0f} | {s['p50']:.1f} | {s['p95']:.1f} | {s['p99']:.1f} | "
              f"{s['qps']:.1f} | {s['errors']} | {loc} |")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import ray
    from ray import serve

    from interestrec.recommend.service import RecommenderService
    from interestrec.serving.app import build_app

    rng = np.random.default_rng(args.seed)
    service = RecommenderService(args.artifacts)
    print(f"[bench_serve] version {service.version}: {len(service.user_ids)} users, {len(service.item_ids)} items; "
          f"load {os.getloadavg()[0]:.1f}", flush=True)
    rates = {"known": args.known_qps, "cold": args.cold_qps, "cold_text": args.text_qps}
    bodies = {k: payloads(k, service.user_ids, service.item_ids, rng, 4000) for k in rates}
    encoder = None
    if args.text_qps:
        from interestrec.encode.config import EncodeConfig
        from interestrec.encode.encoder import TextEncoder

        encoder = TextEncoder(None, device="auto", max_length=EncodeConfig.max_tokens, num_threads=1)
    local = {k: in_process(service, encoder, bodies[k], 5.0) for k in rates if rates[k] > 0}

    tmp = tempfile.mkdtemp(prefix="bench-serve-")
    store, redis_server = start_store(args.store, tmp)
    port = _services.free_port()
    os.environ.setdefault("RAY_SERVE_PROXY_READY_CHECK_TIMEOUT_S", "60")  # a loaded machine starts the proxy slowly
    _services.start_local_ray(args.cpus)
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    url = f"http://127.0.0.1:{port}/recommend"
    rows, known_default, errors_default, extra_lines = [], None, None, []
    write_token = secrets.token_hex(16)  # POST /events always needs one
    try:
        for n, setting in enumerate(args.settings_list):
            label = ",".join(f"{k}={v}" for k, v in setting.items()).replace("recommender_replicas", "replicas")
            spec = {"artifacts": args.artifacts, "store": store, "text": bool(args.text_qps), "recommender_cpus": 0.5,
                    "token": write_token, **setting}
            serve.run(build_app(spec), name="interestrec", route_prefix="/")
            if n == 0:  # fresh events for a fifth of the users, so known requests fold real stored state
                import httpx

                for u in service.user_ids[::5]:
                    httpx.post(url.replace("/recommend", "/events"), timeout=30, headers={
                        "Authorization": f"Bearer {write_token}"}, json={
                        "user_id": int(u), "events": [{"item_id": int(i), "event": "click"}
                                                      for i in rng.choice(service.item_ids, 3, replace=False)]}
                    ).raise_for_status()
            paths = {k: (rates[k], bodies[k]) for k in rates}
            res = asyncio.run(open_loop(url, paths, args.warmup, args.seconds, args.seed + n))
            for k in rates:
                if rates[k] > 0:
                    rows.append((label, k, {**res[k], "offered": rates[k]}, local[k]))
            if n == 0:
                known_default = tuple(res[k]["p99"] if k in res else float("nan") for k in ("known", "cold"))
                errors_default = sum(res[k]["errors"] for k in rates if rates[k] > 0)
            print(f"[bench_serve] {label}: done (codes of errors {res['_codes']}, load {os.getloadavg()[0]:.1f})", flush=True)
        first = args.settings_list[0]
        label = ",".join(f"{k}={v}" for k, v in first.items()).replace("recommender_replicas", "replicas")
        if len(args.settings_list) > 1:
            serve.run(build_app({"artifacts": args.artifacts, "store": store, "text": bool(args.text_qps),
                                 "recommender_cpus": 0.5, "token": write_token, **first}), name="interestrec",
                      route_prefix="/")
        if args.capacity:
            best = 0.0
            for rate in (50, 75, 100, 150, 200, 300, 400):
                res = asyncio.run(open_loop(url, {"known": (rate, bodies["known"])}, 2.0, min(args.seconds, 10.0),
                                            args.seed + rate))
                s = res["known"]
                rows.append((label + " (capacity)", "known", {**s, "offered": rate}, local["known"]))
                print(f"[bench_serve] capacity step {rate} QPS: p99 {s['p99']:.1f} ms, {s['errors']} errors", flush=True)
                if s["p99"] < 100 and s["errors"] == 0:
                    best = rate
                else:
                    break
            found = f"{best:.0f} QPS" if best else "below the first step (50 QPS)"
            extra_lines.append(f"capacity (highest offered known-user rate with p99 < 100 ms, 0 errors): {found}; "
                               f"in-process single caller {local['known']['qps']:.0f} QPS "
                               f"(ratio {best / local['known']['qps']:.2f})")
        if args.kill_replica:
            res = asyncio.run(open_loop(url, {"known": (args.known_qps, bodies["known"])}, args.warmup, args.seconds,
                                        args.seed + 99, on_start=kill_one_replica(5.0)))
            s = res["known"]
            rows.append((label + " (replica killed)", "known", {**s, "offered": args.known_qps}, local["known"]))
            x = res["_extra"]
            extra_lines.append(f"replica kill at {args.known_qps:.0f} QPS: {s['errors']} failed of {s['n']} "
                               f"({100 * s['errors'] / max(s['n'], 1):.2f}%, codes {res['_codes']}); replacement replica up "
                               f"{x['replaced_s']:.1f} s after the kill; p99 {s['p99']:.1f} ms")
    finally:
        serve.shutdown()
        ray.shutdown()
        if redis_server is not None:
            redis_server.stop()

    print(f"\nmachine: {os.cpu_count()} CPUs, load average now {os.getloadavg()[0]:.1f}; store {args.store}; open loop "
          f"(Poisson), {args.seconds:.0f} s measured after {args.warmup:.0f} s warm-up; load generator on the same machine")
    table(rows)
    for line in extra_lines:
        print(line)
    _bench.last_line({"known_p99_ms": f"{known_default[0]:.1f}", "cold_p99_ms": f"{known_default[1]:.1f}",
                      "errors": errors_default})
    return 0


if __name__ == "__main__":
    sys.exit(main())
