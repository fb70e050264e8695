"""Bounded work per request, over real HTTP on 127.0.0.1 (Serve, one replica, open reads as on the loopback
demo): caps on ``k`` and batches (422 naming the field and cap), heavy requests refused with 429 when the
pool is full (never queued, never a 5xx), stalled clients (raw sockets that send headers and stop) answered
408 / 503 while light requests still answer at once, and a caller without read auth kept from any user's
history (``exclude_seen``, the ranking's depth, ``/interests``, ``/similar``).
"""

from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path

import httpx
import pytest

from fixtures.artifacts import make_artifacts

os.environ.setdefault("RAY_SERVE_PROXY_READY_CHECK_TIMEOUT_S", "60")
APP, PREFIX, TOKEN = "limits", "/limits", "w-limits"
LIMITS = {"max_k": 60, "open_max_k": 30, "open_min_peers": 3, "max_batch_users": 20, "max_batch_cost": 200,
          "mmr_candidates": 40, "heavy_slots": 1, "body_timeout_s": 6.0, "max_ongoing_requests": 16,
          "max_body_readers": 6, "max_batch_size": 4, "recommender_replicas": 1, "recommender_cpus": 0.25}
pytestmark = pytest.mark.slow  # a Serve app start and a few seconds of stalled sockets


@pytest.fixture(scope="module")
def out(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("limits") / "out"
    make_artifacts(out, version=1, d=32)
    return out


@pytest.fixture(scope="module")
def service(out):
    from interestrec.recommend.service import RecommenderService

    return RecommenderService(str(out))


@pytest.fixture(scope="module")
def server(out, ray_local, tmp_path_factory):
    from ray import serve
    from ray.serve.context import _get_global_client

    from fixtures.ports import free_port, wait_http
    from interestrec.serving.app import build_app

    serve.start(http_options={"host": "127.0.0.1", "port": free_port()})
    port = _get_global_client().http_config.port  # the running proxy's port (Serve may already be up)
    db = tmp_path_factory.mktemp("limits-store") / "events.db"
    serve.run(build_app({"artifacts": str(out), "store": f"sqlite://{db}", "token": TOKEN, "text": False, **LIMITS}),
              name=APP, route_prefix=PREFIX)
    wait_http(f"http://127.0.0.1:{port}{PREFIX}/healthz")
    with httpx.Client(base_url=f"http://127.0.0.1:{port}{PREFIX}", timeout=30) as client:
        yield client, port
    serve.delete(APP)


@pytest.fixture(scope="module")
def users(service) -> list[int]:
    return [int(u) for u in service.user_ids]


def test_k_and_batches_over_the_caps_are_422_naming_field_and_cap(server, users):
    c, _ = server
    for path, body in (("/recommend", {"user_id": users[0], "k": 61}),
                       ("/recommend/batch", {"user_ids": users[:2], "k": 61})):
        r = c.post(path, json=body)
        assert r.status_code == 422 and "k must be at most 60" in r.json()["detail"] and "serve.max_k" in r.text
    r = c.get(f"/users/{users[0]}/similar", params={"k": 61})
    assert r.status_code == 422 and "serve.max_k" in r.json()["detail"]
    r = c.post("/recommend/batch", json={"user_ids": users[:21], "k": 1})
    assert r.status_code == 422 and "at most 20" in r.json()["detail"] and "max_batch_users" in r.text
    r = c.post("/recommend/batch", json={"user_ids": users[:20], "k": 11})
    assert r.status_code == 422 and "20 × 11 = 220" in r.json()["detail"] and "max_batch_cost" in r.text
    ok = c.post("/recommend/batch", json={"user_ids": users[:20], "k": 10})
    assert ok.status_code == 200 and len(ok.json()["results"]) == 20
    cold = c.post("/recommend", json={"history": [{"item_id": 30}], "k": 61})  # the caller's own history: same cap
    assert cold.status_code == 422 and "serve.max_k" in cold.text


def test_heavy_requests_beyond_the_pool_get_429_and_light_ones_still_answer(server, users):
    c, _ = server
    heavy, light, stop = [], [], threading.Event()

    def batches():
        with httpx.Client(base_url=c.base_url, timeout=30) as h:
            while not stop.is_set():
                r = h.post("/recommend/batch", json={"user_ids": users[:20], "k": 10, "diversity": "mmr"})
                heavy.append((r.status_code, r.headers.get("retry-after"), r.json()))

    def lights():
        with httpx.Client(base_url=c.base_url, timeout=30) as h:
            while not stop.is_set():
                t = time.perf_counter()
                r = h.post("/recommend", json={"user_id": users[1], "k": 5})
                light.append((r.status_code, time.perf_counter() - t))

    threads = [threading.Thread(target=batches) for _ in range(4)] + [threading.Thread(target=lights)]
    for t in threads:
        t.start()
    time.sleep(4.0)
    stop.set()
    for t in threads:
        t.join(timeout=60)
    codes = {code for code, _, _ in heavy}
    assert codes <= {200, 429} and 200 in codes, codes  # never queued into a timeout, never a 5xx
    busy = [(ra, body) for code, ra, body in heavy if code == 429]
    assert busy and all(ra == "1" and "heavy_slots" in body["detail"] for ra, body in busy)
    assert light and all(code == 200 for code, _ in light)


def _stalled(port: int, path: str) -> socket.socket:
    """A connection that sends a POST's headers and 10 of its 100 body bytes, then nothing."""
    s = socket.create_connection(("127.0.0.1", port), timeout=60)
    s.sendall(f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
              f"Content-Length: 100\r\n\r\n".encode() + b'{"user_id"')
    return s


def _answer(s: socket.socket) -> tuple[int, str, float, bool]:
    """The status and head of the answer on ``s``, when it came, and whether the server then closed the
    connection (within 30 s; the ingress in front may drop the replica's ``Connection: close`` header, since
    the header is per hop, but must still close a connection whose body never came)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    head = data.split(b"\r\n\r\n")[0].decode("latin-1")
    when = time.perf_counter()
    s.settimeout(30)
    try:
        while s.recv(4096):
            pass
        closed = True
    except TimeoutError:
        closed = False
    return int(head.split()[1]), head.lower(), when, closed


def test_stalled_bodies_get_408_or_503_and_never_hold_every_slot(server, users):
    c, port = server
    n = LIMITS["max_ongoing_requests"]  # as many stalled clients as the replica has slots
    t0 = time.perf_counter()
    socks = [_stalled(port, f"{PREFIX}/recommend") for _ in range(n)]
    answers: list = [None] * n

    def wait(j):
        answers[j] = _answer(socks[j])

    readers = [threading.Thread(target=wait, args=(j,)) for j in range(n)]
    for t in readers:
        t.start()
    time.sleep(1.5)  # past the grace every body gets: the stalled ones are slow readers (or refused) now
    try:
        for _ in range(3):  # well-behaved requests answer at once, not after the stalled bodies' timeout
            t = time.perf_counter()
            assert c.get("/healthz").json() == {"status": "ok"}
            r = c.post("/recommend", json={"user_id": users[2], "k": 5})
            assert r.status_code == 200 and time.perf_counter() - t < LIMITS["body_timeout_s"] / 2
        for t in readers:
            t.join(timeout=60)
    finally:
        for s in socks:
            s.close()
    codes = [a[0] for a in answers]
    assert sorted(set(codes)) == [408, 503], codes
    assert codes.count(408) <= LIMITS["max_body_readers"]  # at most that many bodies were being waited for
    for code, head, when, closed in answers:
        assert closed, head
        if code == 503:  # refused once the grace for a body had passed, long before the timeout
            assert "retry-after: 1" in head and when - t0 < LIMITS["body_timeout_s"] / 2
        else:
            assert LIMITS["body_timeout_s"] - 1 < when - t0 < LIMITS["body_timeout_s"] + 15


def test_open_reads_cannot_switch_off_exclude_seen_or_page_past_the_open_depth(server, service, users):
    c, _ = server
    u = users[3]
    for path, body in (("/recommend", {"user_id": u, "k": 5, "exclude_seen": False}),
                       ("/recommend/batch", {"user_ids": [u], "k": 5, "exclude_seen": False})):
        r = c.post(path, json=body)
        assert r.status_code == 403 and "exclude_seen" in r.json()["detail"]
    deep = [i["item_id"] for i in service.recommend(u, k=30)["items"]]  # the user's first 30 unseen items
    assert c.post("/recommend", json={"user_id": u, "k": 31}).status_code == 403
    assert c.post("/recommend/batch", json={"user_ids": [u], "k": 31}).status_code == 403
    over = c.post("/recommend", json={"user_id": u, "k": 10, "exclude_items": deep[:21]})
    assert over.status_code == 403 and "serve.open_max_k" in over.json()["detail"]
    for mode in (False, "round_robin", "mmr"):
        r = c.post("/recommend", json={"user_id": u, "k": 10, "exclude_items": deep[:20], "diversity": mode})
        assert r.status_code == 200, r.text
        got = {i["item_id"] for i in r.json()["items"]}
        assert len(got) == 10 and got <= set(deep[20:]), mode  # nothing past rank 30, however it is asked


def test_open_reads_show_no_history_through_interests_or_similar(server, service, users):
    c, _ = server
    for u in users[:8]:
        hist = {int(service.item_ids[i]) for i in service.model.history[service.user_index(u)]}
        body = c.get(f"/users/{u}/interests").json()
        near = {i["nearest_item"]["item_id"] for i in body["interests"] if i["nearest_item"]}
        assert near and not near & hist and body["history_size"] is None
    one = c.get(f"/users/{users[0]}/similar", params={"n": 1, "k": 30}).json()
    assert one["users"] == [] and one["items"] == []  # one similar user's history would show: nothing
    assert service.similar(users[0], n=1, k=30)["items"]  # (there is such a history to show)
    crowd = c.get(f"/users/{users[0]}/similar", params={"n": 10, "k": 30}).json()
    assert crowd["items"] and all(i["users"] >= 3 for i in crowd["items"])
    assert c.get(f"/users/{users[0]}/similar", params={"k": 31}).status_code == 403
