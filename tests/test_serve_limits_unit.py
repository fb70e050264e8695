"""Bounded work per request without Serve: the heavy pool refuses instead of queueing, the guard answers a
stalled body 408 and a body beyond the readers' bound 503 (a bare ASGI call), the caps' messages name the
field and the setting, and the service keeps a caller without read auth within the open depth."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import numpy as np
import pytest

from fixtures.artifacts import make_artifacts


def test_heavy_pool_refuses_when_full_and_holds_a_slot_until_the_work_ends():
    from interestrec.serving.errors import Busy
    from interestrec.serving.limits import HeavyPool

    pool = HeavyPool(1)
    gate, started = threading.Event(), threading.Event()

    def slow():
        started.set()
        gate.wait(10)
        return "slow"

    async def scenario():
        first = asyncio.ensure_future(pool.run(slow))
        await asyncio.to_thread(started.wait, 10)
        with pytest.raises(Busy, match="heavy_slots"):
            await pool.run(lambda: "other")
        first.cancel()  # the caller goes away; its work still runs …
        await asyncio.sleep(0.05)
        with pytest.raises(Busy):
            await pool.run(lambda: "other")  # … and still holds the slot
        gate.set()
        for _ in range(100):
            if pool.busy == 0:
                break
            await asyncio.sleep(0.02)
        return await pool.run(lambda: "after")

    assert asyncio.run(scenario()) == "after" and pool.busy == 0
    pool.close()


def _call(app, messages, timeout_s: float, readers: int, method: str = "POST"):
    """One request through the Guard with the given receive messages (a list; then it stalls forever)."""
    from interestrec.serving import http

    http.configure_bodies(timeout_s, readers)
    sent = []
    queue = list(messages)

    async def receive():
        if queue:
            return queue.pop(0)
        await asyncio.sleep(3600)

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": method, "path": "/x", "headers": [(b"content-length", b"10")]}
    asyncio.run(http.Guard(app)(scope, receive, send))
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], dict(start["headers"]), body


@pytest.fixture
def guard_app(monkeypatch):
    from interestrec.serving import http

    class Counter:
        def inc(self, value=1.0, tags=None):
            pass

    monkeypatch.setattr(http, "_METRICS", {"requests": Counter(), "cold": Counter(), "fallbacks": Counter()})
    monkeypatch.setitem(http.BODIES, "reading", 0)
    monkeypatch.setattr(http, "BODY_GRACE_S", 0.1)
    got = []

    async def app(scope, receive, send):
        if scope["method"] != "GET":
            got.append(await receive())
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    yield app, got
    http.configure_bodies(5.0, 32)


def test_guard_reads_the_body_once_times_out_a_stall_and_bounds_slow_readers(guard_app):
    import json
    import time

    from interestrec.serving import http

    app, got = guard_app
    parts = [{"type": "http.request", "body": b"12345", "more_body": True},
             {"type": "http.request", "body": b"67890", "more_body": False}]
    assert _call(app, parts, 1.0, 4)[0] == 200 and got[-1]["body"] == b"1234567890"  # the route sees it whole
    t = time.perf_counter()
    status, headers, body = _call(app, parts[:1], 0.3, 4)  # half a body, then nothing
    assert status == 408 and 0.25 < time.perf_counter() - t < 5
    assert "body_timeout_s" in json.loads(body)["detail"] and headers[b"connection"] == b"close"
    assert http.BODIES["reading"] == 0  # the stalled reader's slot is free again
    http.BODIES["reading"] = 2  # two slow bodies being received elsewhere
    assert _call(app, parts, 1.0, 2)[0] == 200  # a body that comes at once is never refused
    t = time.perf_counter()
    status, headers, body = _call(app, parts[:1], 1.0, 2)  # a slow one over the bound: refused after the grace
    assert status == 503 and headers[b"retry-after"] == b"1" and "max_body_readers" in json.loads(body)["detail"]
    assert time.perf_counter() - t < 0.9
    assert _call(app, [], 0.2, 2, method="GET")[0] == 200  # a GET never waits for a body


def test_caps_name_the_field_and_the_setting():
    from interestrec.recommend.config import ServeConfig
    from interestrec.recommend.errors import InvalidRequest
    from interestrec.serving.errors import Forbidden
    from interestrec.serving.limits import check_batch, check_k, check_open_depth

    cfg = ServeConfig(max_k=60, open_max_k=30, max_batch_users=20, max_batch_cost=200)
    check_k(60, cfg)
    with pytest.raises(InvalidRequest, match=r"k must be at most 60 .*serve\.max_k"):
        check_k(61, cfg)
    check_open_depth(20, 10, False, cfg)
    check_open_depth(60, 500, True, cfg)  # read auth: no open cap
    with pytest.raises(Forbidden, match=r"k \+ exclude_items \(20 \+ 11\) is over 30 \(serve\.open_max_k\)"):
        check_open_depth(20, 11, False, cfg)
    check_batch(20, 10, cfg)
    with pytest.raises(InvalidRequest, match=r"user_ids must hold at most 20 .*max_batch_users"):
        check_batch(21, 1, cfg)
    with pytest.raises(InvalidRequest, match=r"user_ids × k must be at most 200 .*= 220"):
        check_batch(20, 11, cfg)
    with pytest.raises(ValueError, match="open_max_k"):
        ServeConfig(max_k=10, open_max_k=20)
    with pytest.raises(ValueError, match="max_body_readers"):
        ServeConfig(max_ongoing_requests=8, max_batch_size=4, max_body_readers=8)
    assert ServeConfig(max_ongoing_requests=8, max_batch_size=4).body_readers == 4


@pytest.fixture(scope="module")
def out(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("limits") / "out"
    make_artifacts(out, version=1, d=32)
    return out


def test_diversification_draws_from_a_bounded_candidate_set(out):
    from interestrec.recommend.service import RecommenderService

    svc = RecommenderService(str(out), candidates=12, open_depth=20)
    u = int(svc.user_ids[0])
    top = [i["item_id"] for i in svc.recommend(u, k=12)["items"]]
    for mode in ("mmr", "round_robin"):
        div = svc.recommend(u, k=6, diversity=mode)["items"]  # 4 × k = 24 candidates without the cap
        assert {i["item_id"] for i in div} <= set(top), mode
    excluded = top[:8]
    hidden = svc.recommend(u, k=10, diversity="mmr", exclude_items=excluded, explain_history=False)["items"]
    deep = [i["item_id"] for i in svc.recommend(u, k=20)["items"]]
    assert {i["item_id"] for i in hidden} <= set(deep) - set(excluded)  # within rank 20, exclusions counted


def test_hidden_history_views(out):
    """Without read auth: no interest's nearest item is a history item; /similar items are shared by several
    similar users (so never one other user's history alone)."""
    from interestrec.recommend.service import RecommenderService

    svc = RecommenderService(str(out))
    shown_history = 0
    for u in svc.user_ids[:12]:
        hist = {int(svc.item_ids[i]) for i in svc.model.history[svc.user_index(int(u))]}
        plain = {i["nearest_item"]["item_id"] for i in svc.interests(int(u))["interests"]}
        shown_history += len(plain & hist)
        hidden = svc.interests(int(u), hide_history=True)["interests"]
        assert hidden and not {i["nearest_item"]["item_id"] for i in hidden} & hist
    assert shown_history > 0  # the plain view does show history items: what hide_history closes
    u = int(svc.user_ids[0])
    assert svc.similar(u, n=1)["items"] and svc.similar(u, n=1, min_users=2)["items"] == []
    crowd = svc.similar(u, n=10, k=50, min_users=3)["items"]
    assert crowd and all(i["users"] >= 3 for i in crowd)
    assert np.all(np.diff([i["users"] for i in crowd]) <= 0)


def test_a_body_chunk_late_past_a_deadline_is_kept_for_the_next_read_not_lost():
    from interestrec.serving.bodies import _Body

    async def scenario():
        q: asyncio.Queue = asyncio.Queue()
        calls = []

        async def receive():
            calls.append(1)
            return await q.get()

        body = _Body(receive)
        loop = asyncio.get_running_loop()
        with pytest.raises(asyncio.TimeoutError):
            await body.read_until(loop.time() + 0.05)  # nothing yet: the receive stays pending, not cancelled
        q.put_nowait({"type": "http.request", "body": b"abc", "more_body": True})
        await asyncio.sleep(0)
        await asyncio.sleep(0)  # the pending receive has taken the chunk; the loop notices only now
        with pytest.raises(asyncio.TimeoutError):  # past the deadline, the chunk is kept, the next is awaited
            await body.read_until(loop.time() - 1.0)
        q.put_nowait({"type": "http.request", "body": b"def", "more_body": False})
        assert await body.read_until(loop.time() + 1.0) is True
        return b"".join(body.parts), len(calls)

    parts, calls = asyncio.run(scenario())
    assert parts == b"abcdef" and calls == 2  # one receive per message: none was dropped by a timeout
