"""The load ``jobs/bench_serve.py`` offers: request bodies per path, an open loop of Poisson arrivals over
HTTP (latency from the scheduled send time), and the same calls made in-process on the library service.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import numpy as np

TEXTS = ("space adventure with robots", "a quiet romantic comedy in paris", "gritty crime thriller", "animated family film")

def stats(lat: list[float], errors: int, seconds: float) -> dict:
    """p50/p95/p99 (ms), served QPS and errors of one path."""
    x = np.asarray(lat) * 1e3 if lat else np.full(1, np.nan)
    return {"n": len(lat) + errors, "p50": float(np.percentile(x, 50)), "p95": float(np.percentile(x, 95)),
            "p99": float(np.percentile(x, 99)), "qps": len(lat) / seconds, "errors": errors}


def payloads(kind: str, users: np.ndarray, items: np.ndarray, rng: np.random.Generator, n: int) -> list[dict]:
    if kind == "known":
        return [{"user_id": int(u), "k": 10} for u in rng.choice(users, n)]
    out = []
    for _ in range(n):
        body = {"history": [{"item_id": int(i), "event": "rate", "value": 4.0} for i in rng.choice(items, 5, replace=False)],
                "k": 10}
        if kind == "cold_text":
            body["text"] = TEXTS[int(rng.integers(len(TEXTS)))]
        out.append(body)
    return out


async def open_loop(url: str, paths: dict[str, tuple[float, list[dict]]], warmup: float, seconds: float,
                    seed: int, on_start=None) -> dict:
    """Poisson arrivals per path at its rate for ``warmup + seconds``; latencies of the measured window only."""
    import aiohttp

    rng = np.random.default_rng(seed)
    lat = {k: [] for k in paths}
    errs = {k: 0 for k in paths}
    codes: dict[str, int] = {}
    tasks = []
    t0 = time.perf_counter() + 0.2
    t_measure, t_end = t0 + warmup, t0 + warmup + seconds

    async def one(session, kind: str, body: dict, t_sched: float) -> None:
        try:
            async with session.post(url, json=body) as r:
                await r.read()
                ok = r.status == 200
                code = str(r.status)
        except (aiohttp.ClientError, asyncio.TimeoutError) as e:
            ok, code = False, type(e).__name__
        if t_sched >= t_measure:
            if ok:
                lat[kind].append(time.perf_counter() - t_sched)
            else:
                errs[kind] += 1
                codes[code] = codes.get(code, 0) + 1

    async def generator(session, kind: str, rate: float, bodies: list[dict]) -> None:
        t, j = t0, 0
        while True:
            t += rng.exponential(1.0 / rate)
            if t >= t_end:
                return
            delay = t - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(session, kind, bodies[j % len(bodies)], t)))
            j += 1

    conn = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=conn, timeout=aiohttp.ClientTimeout(total=30)) as session:
        extra = [asyncio.create_task(on_start(t_measure))] if on_start else []
        await asyncio.gather(*(generator(session, k, r, b) for k, (r, b) in paths.items() if r > 0))
        await asyncio.gather(*tasks)
        extra_out = await asyncio.gather(*extra)
    out = {k: stats(lat[k], errs[k], seconds) for k in paths if paths[k][0] > 0}
    out["_codes"] = codes
    out["_extra"] = extra_out[0] if extra_out else None
    return out


def stalled_clients(port: int, n: int, seconds_after_measure: float):
    """A coroutine factory for ``open_loop(on_start=...)``: ``n`` connections that send a ``POST /recommend``'s
    headers and part of its body, then nothing; one the server closes is opened again at once, until
    ``seconds_after_measure`` s into the measured window. Returns how many connections were opened."""

    async def hold(t_measure: float) -> dict:
        opened = 0
        head = (b"POST /recommend HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                b"Content-Length: 200\r\n\r\n{\"user_id\": ")

        async def one() -> None:
            nonlocal opened
            while time.perf_counter() < t_measure + seconds_after_measure:
                try:
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
                except OSError:
                    await asyncio.sleep(0.1)
                    continue
                opened += 1
                writer.write(head)
                try:
                    await writer.drain()
                    left = t_measure + seconds_after_measure - time.perf_counter()
                    await asyncio.wait_for(reader.read(), max(left, 0.0))  # until the server answers or closes
                except (OSError, asyncio.TimeoutError):
                    pass
                writer.close()

        await asyncio.gather(*(one() for _ in range(n)))
        return {"stalled_opened": opened}

    return hold


def replica_pids() -> list[int]:
    """Process ids of the Serve replicas on this machine that answer HTTP (the text encoder's left out): the
    bench runs one app at a time, so they are its replicas. Read from the process titles in ``/proc``."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            title = (entry / "cmdline").read_bytes().split(b"\0")[0].decode("utf-8", "replace")
        except OSError:
            continue
        if title.startswith("ray::ServeReplica:") and ":Encoder" not in title:
            pids.append(int(entry.name))
    return pids


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds the processes have used so far (Linux ``/proc``; a process gone counts 0)."""
    ticks = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def in_process(service, encoder, bodies: list[dict], seconds: float) -> dict:
    """The same calls on the library service directly, one caller, no Serve or HTTP, one BLAS thread (as
    in a replica; on two shared cores a multi-threaded BLAS is several times slower for these products)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        return _in_process(service, encoder, bodies, seconds)


def _in_process(service, encoder, bodies: list[dict], seconds: float) -> dict:
    lat: list[float] = []
    t_end = time.perf_counter() + seconds
    j = 0
    while time.perf_counter() < t_end:
        b = bodies[j % len(bodies)]
        t = time.perf_counter()
        if "user_id" in b:
            service.recommend(b["user_id"], b["k"])
        else:
            tv = encoder.encode([b["text"]])[0] if "text" in b else None
            service.recommend_history(b["history"], b["k"], tv)
        lat.append(time.perf_counter() - t)
        j += 1
    return stats(lat, 0, seconds)
