"""The Serve applications ``jobs/bench_serve.py`` measures: the recommender app and the no-op anchor.

The anchor is what Ray Serve itself costs here: a FastAPI ingress deployment whose ``POST /recommend``
returns a fixed small JSON body without reading anything, with the same replicas and CPUs per replica as
the recommender app. Both start on a fresh local Ray in the calling process.
"""

from __future__ import annotations

import os
import secrets

NOOP_BODY = {"user_id": 0, "items": [], "version": "noop"}


def build_noop(replicas: int, cpus: float, max_ongoing: int):
    """The no-op FastAPI ingress app (``POST /recommend`` and ``GET /healthz``)."""
    from fastapi import FastAPI
    from ray import serve

    api = FastAPI()

    @serve.deployment(num_replicas=replicas, max_ongoing_requests=max_ongoing, ray_actor_options={"num_cpus": cpus})
    @serve.ingress(api)
    class NoOp:
        @api.post("/recommend")
        async def recommend(self) -> dict:
            return NOOP_BODY

        @api.get("/healthz")
        async def healthz(self) -> dict:
            return {"ok": True}

    return NoOp.bind()


def start(kind: str, artifacts: str, store: str, setting: dict, cpus: int, port: int, text: bool = False) -> str:
    """Start a local Ray and Serve on ``127.0.0.1:port`` with app ``kind`` (``noop`` or ``app``); returns the
    write token (the app's ``POST /events`` needs one)."""
    from ray import serve

    import _services
    from interestrec.serving.ingress import use_ingress

    os.environ.setdefault("RAY_SERVE_PROXY_READY_CHECK_TIMEOUT_S", "60")  # a loaded machine starts the proxy slowly
    use_ingress()  # the shipped ingress (HAProxy) unless the variant's environment says otherwise
    _services.start_local_ray(cpus)
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    token = secrets.token_hex(16)
    replicas = int(setting.get("recommender_replicas", 2))
    if kind == "noop":
        serve.run(build_noop(replicas, 0.5, int(setting.get("max_ongoing_requests", 64))), name="noop",
                  route_prefix="/")
        return token
    from interestrec.serving.app import build_app

    serve.run(build_app({"artifacts": artifacts, "store": store, "text": text, "recommender_cpus": 0.5,
                         "token": token, **setting}), name="interestrec", route_prefix="/")
    return token
