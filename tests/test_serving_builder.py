"""The Serve app's three modules without starting Serve: the typed builder args (what the shipped configs
pass, what they must not), the batched request type, and the HTTP layer (error map, body cap, auth) on a
bare FastAPI app."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def _args(name: str) -> dict:
    (application,) = yaml.safe_load((ROOT / "serving" / name).read_text())["applications"]
    assert application["import_path"] == "interestrec.serving.app:build_app"
    return application


# ---------------------------------------------------------------------------------------------- AppArgs
def test_the_shipped_configs_args_parse():
    from interestrec.serving.builder import AppArgs

    local = AppArgs.from_args(_args("config.yaml")["args"])
    assert local.serve.store == "sqlite:///tmp/interestrec/events.db" and local.serve.read_token is None
    assert (local.artifacts, local.version, local.text, local.encoder_gpus) == (None, None, True, 0.0)
    assert (local.serve.recommender_replicas, local.serve.max_batch_size, local.serve.batch_wait_timeout_s) == (1, 16, 0.0)
    cluster = AppArgs.from_args(_args("cluster.yaml")["args"])
    assert cluster.serve.store == "redis://redis.internal:6379/0" and cluster.serve.token is None
    assert (cluster.serve.recommender_replicas, cluster.serve.recommender_cpus, cluster.encoder_gpus) == (2, 1, 1.0)
    with pytest.raises(AttributeError):  # frozen
        cluster.text = False


def test_cli_strings_convert_and_defaults_hold(tmp_path):
    from interestrec.recommend.config import ServeConfig
    from interestrec.serving.builder import AppArgs

    a = AppArgs.from_args({"artifacts": tmp_path, "version": 3, "text": "No", "encoder_gpus": "0.5",
                           "recommender_replicas": "2", "model": ""})
    assert (a.artifacts, a.version, a.text, a.encoder_gpus, a.model) == (str(tmp_path), "3", False, 0.5, None)
    assert a.serve.recommender_replicas == 2
    for v, want in ((None, True), ("", True), ("yes", True), ("1", True), (0, False), ("FALSE", False), (True, True)):
        assert AppArgs.from_args({"text": v}).text is want, v
    assert AppArgs.from_args({}) == AppArgs()
    assert AppArgs.from_args({"encoder_gpus": None}).encoder_gpus == 0.0
    import dataclasses

    everything = {**dataclasses.asdict(ServeConfig()), "artifacts": "out", "text": True}  # as `interestrec serve`
    assert AppArgs.from_args(everything).serve == ServeConfig()


def test_unknown_keys_are_refused_all_named():
    from interestrec.serving.builder import AppArgs

    with pytest.raises(ValueError, match=r"unknown serve settings \['artifact', 'replicas'\]; known: .*'artifacts'"):
        AppArgs.from_args({"artifact": "out", "replicas": 2, "store": "sqlite:///x.db"})
    with pytest.raises(ValueError, match="mapping"):
        AppArgs.from_args(["artifacts"])


@pytest.mark.parametrize(("args", "named"), [
    ({"encoder_gpus": "abc"}, "serve.encoder_gpus must be a number, got 'abc'"),
    ({"encoder_gpus": -1}, "serve.encoder_gpus must be ≥ 0"),
    ({"encoder_gpus": True}, "serve.encoder_gpus must be a number"),
    ({"text": "maybe"}, "serve.text must be a bool"),
    ({"version": 1.5}, "serve.version must be a string"),
    ({"artifacts": 7}, "serve.artifacts must be a string"),
    ({"max_batch_size": "lots"}, "serve.max_batch_size must be an int, got 'lots'"),
    ({"port": "80x"}, "serve.port must be an int"),
    ({"max_batch_size": 100, "max_ongoing_requests": 10}, "max_batch_size must be in"),
])
def test_bad_values_are_refused_by_name(args, named):
    from interestrec.serving.builder import AppArgs

    with pytest.raises(ValueError, match=named.replace("(", r"\(")):
        AppArgs.from_args(args)


def test_tokens_come_from_args_then_environment_placeholders_refused_else_generated():
    from interestrec.serving.builder import AppArgs, resolve_tokens

    cluster = _args("cluster.yaml")
    cfg = AppArgs.from_args(cluster["args"]).serve
    with pytest.raises(ValueError, match=r"serve token is still a placeholder \('change-me-write-token'"):
        resolve_tokens(cfg, cluster["runtime_env"]["env_vars"])  # the file's env_vars as shipped
    env = {"INTERESTREC_TOKEN": "w", "INTERESTREC_READ_TOKEN": "r"}
    resolved = resolve_tokens(cfg, env)
    assert (resolved.token, resolved.read_token, resolved.store) == ("w", "r", cfg.store)
    mine = AppArgs.from_args({"token": "mine", "read_token": ""}).serve
    assert (resolve_tokens(mine, env).token, resolve_tokens(mine, env).read_token) == ("mine", "r")
    with pytest.raises(ValueError, match="serve read_token is still a placeholder"):
        resolve_tokens(AppArgs.from_args({"read_token": "change-me"}).serve, {})
    one, two = (resolve_tokens(AppArgs.from_args(_args("config.yaml")["args"]).serve, {}) for _ in range(2))
    assert len(one.token) >= 32 and one.token != two.token and one.read_token is None  # writes never open


def test_build_app_takes_args_or_a_mapping(tmp_path, monkeypatch):
    from ray.serve import Application

    from interestrec.serving.app import build_app
    from interestrec.serving.builder import AppArgs

    monkeypatch.setenv("INTERESTREC_TOKEN", "w")
    (tmp_path / "publish").mkdir()
    (tmp_path / "publish" / "LATEST").write_text("v4")
    for args in ({"artifacts": str(tmp_path), "text": "false", "recommender_replicas": 2},
                 AppArgs.from_args({"artifacts": tmp_path, "text": False, "recommender_replicas": "2"})):
        app = build_app(args)
        assert isinstance(app, Application)
        d = app._bound_deployment
        cfg, encoder = d.init_args
        assert (cfg.token, cfg.recommender_replicas, encoder) == ("w", 2, None)
        assert d._deployment_config.user_config == {"artifacts": str(tmp_path), "version": "4"}  # LATEST pinned here
    with_text = build_app({"encoder_gpus": "1"})._bound_deployment.init_args[1]._bound_deployment
    assert with_text.ray_actor_options["num_gpus"] == 1.0 and with_text._deployment_config.user_config is None


# ---------------------------------------------------------------------------------------------- KnownRequest
def test_the_batched_method_reads_known_requests_by_name():
    from interestrec.serving.deployments import KnownRequest, Recommender
    from interestrec.serving.errors import UnknownId

    assert KnownRequest._fields == ("user_id", "k", "exclude_seen", "diversity", "exclude_items", "authed")
    r = KnownRequest("u1", 5, True, "mmr", [10], False)
    assert r.group == (5, True, "mmr") and r.exclude_items == [10]

    calls = []

    class Codec:
        def user(self, u):
            if u == "nobody":
                raise UnknownId(f"unknown user {u!r}")
            return int(u[1:])

        def item_refs(self, items, is_live, skip_unknown=False):
            return [i * 100 for i in items]

        def out(self, body):
            return body

    class Service:
        version = "1"

        def user_index(self, u):
            return u

        def recommend_many(self, users, k, exclude_seen, diversity, states, excludes, explain):
            calls.append((users, k, exclude_seen, diversity, excludes, explain))
            return [{"user": u} for u in users]

    threads = []

    class Me(next(c for c in Recommender.func_or_class.__mro__ if "_known_sync" in vars(c))):  # under the ingress
        codecs, replica = {"1": Codec()}, "local"

        def _is_live(self, item):
            return False

        def _fresh_states(self, service, codec, users):
            threads.append(threading.get_ident())
            return [None] * len(users), True

    reqs = [KnownRequest("u1", 5, True, False, [1], True), KnownRequest("u2", 5, True, False, None, False),
            KnownRequest("u3", 9, False, "mmr", None, True), KnownRequest("nobody", 5, True, False, None, True)]
    for run in (lambda: Me()._known_sync(Service(), reqs), lambda: asyncio.run(Me()._known_batch_on_loop(Service(), reqs))):
        out = run()
        assert calls == [([1, 2], 5, True, False, [[100], []], [True, False]), ([3], 9, False, "mmr", [[]], [True])]
        assert out[0] == {"user": 1, "fresh_events": 0, "replica": "local"}  # a history size: read auth only
        assert out[1]["fresh_events"] is None and out[2]["fresh_events"] == 0
        assert isinstance(out[3], UnknownId)
        calls.clear()
    assert threads[0] == threading.get_ident() != threads[1]  # on the loop: the store read goes to a thread


# ---------------------------------------------------------------------------------------------- HTTP layer
class _Counter:
    def __init__(self):
        self.tags = []

    def inc(self, value=1.0, tags=None):
        self.tags.extend([tags] * int(value))


@pytest.fixture
def client(monkeypatch):
    from fastapi import Body
    from fastapi.testclient import TestClient

    from interestrec.serving import http
    from interestrec.serving.errors import Forbidden, KeyConflict, StoreError, Unauthorized

    monkeypatch.setattr(http, "_METRICS", {"requests": _Counter(), "cold": _Counter(), "fallbacks": _Counter()})
    monkeypatch.setattr(http, "REQUESTS", http.RequestCounts())  # counts of this app only
    api = http.make_app()
    errors = {"store": StoreError("down"), "auth": Unauthorized("no"), "forbidden": Forbidden("nope"),
              "conflict": KeyConflict("other batch")}

    @api.post("/raise/{what}")
    async def fail(what: str, body: dict = Body(...)):  # noqa: B008
        raise errors[what]

    with TestClient(api) as c:
        yield c, http._METRICS
    http.REQUESTS.flush()


def test_typed_errors_map_to_status_codes_and_headers(client):
    from interestrec.serving import http

    c, counters = client
    r = c.post("/raise/store", json={})
    assert (r.status_code, r.headers["retry-after"], r.json()) == (503, "1", {"detail": "down"})
    r = c.post("/raise/auth", json={})
    assert (r.status_code, r.headers["www-authenticate"]) == (401, "Bearer")
    assert c.post("/raise/forbidden", json={}).status_code == 403
    assert c.post("/raise/conflict", json={}).status_code == 409
    bad = c.post("/raise/store", content=b"\xff\xfe", headers={"content-type": "application/json"})
    assert bad.status_code == 422 and "\ufffd" not in bad.text
    assert counters["requests"].tags == []  # counted in the process, sent to the counter once a second
    http.REQUESTS.flush()
    assert counters["requests"].tags[:2] == [{"route": "/raise/{what}", "status": "503"},
                                            {"route": "/raise/{what}", "status": "401"}]


def test_request_counts_reach_the_counter_aggregated_within_the_flush_period(monkeypatch):
    import asyncio

    from interestrec.serving import http

    counter = _Counter()
    calls = []
    counter.inc = lambda value=1.0, tags=None: calls.append((value, tags))
    monkeypatch.setattr(http, "_METRICS", {"requests": counter})
    monkeypatch.setattr(http, "FLUSH_S", 0.05)
    counts = http.RequestCounts()

    async def traffic():
        before = len(calls)
        for status in ("200", "200", "404", "200"):
            counts.add("/recommend", status)
        assert len(calls) == before  # nothing sent per request
        await asyncio.sleep(0.2)
        counts.add("/recommend", "200")  # the next period gets its own flush
        await asyncio.sleep(0.2)

    asyncio.run(traffic())
    assert calls == [(3, {"route": "/recommend", "status": "200"}), (1, {"route": "/recommend", "status": "404"}),
                     (1, {"route": "/recommend", "status": "200"})]
    asyncio.run(traffic())  # a new loop (the old one's timer never fires) still flushes
    assert len(calls) == 6 and counts.pending == {}


def test_bodies_over_the_cap_are_413_declared_or_streamed(client):
    from interestrec.serving import http
    from interestrec.serving.http import MAX_BODY, BodyTooLarge

    c, counters = client
    r = c.post("/raise/store", content=b"{}", headers={"content-length": str(MAX_BODY + 1)})
    assert r.status_code == 413 and r.json() == {"detail": f"request body over {MAX_BODY} bytes"}

    def chunks():  # no content-length: counted as it is read
        for _ in range(3):
            yield b" " * (MAX_BODY // 2)

    r = c.post("/raise/store", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413 and r.json() == {"detail": f"request body over {MAX_BODY} bytes"}
    http.REQUESTS.flush()
    assert [t["status"] for t in counters["requests"].tags] == ["413", "413"]
    from fastapi import HTTPException

    from interestrec.errors import InterestrecError

    assert issubclass(BodyTooLarge, HTTPException) and issubclass(BodyTooLarge, InterestrecError)


def test_auth_helpers():
    from interestrec.recommend.errors import InvalidRequest
    from interestrec.serving import http
    from interestrec.serving.errors import Forbidden, Unauthorized

    assert http.read_auth(None, None) is False and http.read_auth("r", "Bearer r") is True
    with pytest.raises(Unauthorized, match="Bearer <read_token>"):
        http.read_auth("r", "Bearer x")
    with pytest.raises(Unauthorized, match="closed"):
        http.write_auth(None, "Bearer anything")
    with pytest.raises(Unauthorized, match="Bearer <token>"):
        http.write_auth("w", None)
    http.write_auth("w", "Bearer w")
    with pytest.raises(Forbidden, match="exclude_seen"):
        http.check_exclude_seen(False, False)
    http.check_exclude_seen(False, True)
    assert http.batch_key("k", "k") == "k" and http.batch_key(None, "h") == "h" and http.batch_key("b", None) == "b"
    with pytest.raises(InvalidRequest, match="needs an idempotency key"):  # the ingress may retry a write
        http.batch_key(None, None)
    with pytest.raises(ValueError, match="differ"):
        http.batch_key("a", "b")
