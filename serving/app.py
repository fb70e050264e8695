"""Ray Serve application: FastAPI ingress → recommender (CPU) + encoder (batched) + one shared state holder.

    serve run serving/config.yaml          # local, 127.0.0.1:8000
    serve deploy serving/config.yaml       # on a running cluster
    serve run serving.app:build_app artifacts=out/demo

The artifact directory (a pipeline output, its publish root or ``publish/vN``) comes from each
deployment's ``user_config``; a new value hot-loads through ``reconfigure``: the new version is loaded
next to the old one (which keeps answering) and swapped in one assignment, so no request is dropped.

Fresh events go to ONE ``UserState`` replica that validates them, appends them to the durable log
(``interestrec.recommend.state.EventLog``, fsynced before ``POST /events`` answers) and keeps the
current state; every recommender replica reads the user's state from it, so all replicas agree. On
(re)start the holder rebuilds the state from the artifacts plus the log.
"""

import asyncio
import os
import threading
from typing import Literal

from fastapi import FastAPI, Header, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from ray import serve

MAX_BODY = 1 << 20
ATTEMPT_TIMEOUT_S = 5.0  # one call to a replica
DEADLINE_S = 25.0  # all attempts of one call (a killed replica is replaced meanwhile); below clients' 30 s


class HistoryEvent(BaseModel):
    item_id: int
    timestamp: int | None = Field(None, ge=0, description="UTC seconds; now when omitted")
    event: Literal["view", "click", "rate", "purchase", "tag", "search"] = "view"
    value: float | None = None


class RecommendRequest(BaseModel):
    user_id: int | None = None
    history: list[HistoryEvent] | None = Field(None, max_length=1000)
    text: str | None = Field(None, max_length=2000)
    k: int = Field(10, ge=1, le=1000)
    exclude_seen: bool = True
    diversity: bool | Literal["none", "round_robin", "mmr"] = False


class EventsRequest(BaseModel):
    user_id: int
    events: list[HistoryEvent] = Field(..., min_length=1, max_length=1000)


def _errors(fn, *args, **kwargs) -> dict:
    """Run a service call; client mistakes come back as ``{"error": status, "detail": msg}``, not exceptions."""
    from interestrec.recommend.service import NotFound

    try:
        return {"ok": fn(*args, **kwargs)}
    except NotFound as e:
        return {"error": 404, "detail": str(e)}
    except ValueError as e:
        return {"error": 422, "detail": str(e)}


def _event_log_dir(config: dict) -> str:
    return config.get("event_log") or config["artifacts"]


@serve.deployment(ray_actor_options={"num_cpus": 0.1}, max_ongoing_requests=64)
class Encoder:
    """Cold-start text encoding, batched across concurrent requests (GPU when the replica has one)."""

    def __init__(self, model: str | None = None):
        from interestrec.encode.encoder import TextEncoder

        self.encoder = TextEncoder(model, device="auto", max_length=128, num_threads=1)

    @serve.batch(max_batch_size=16, batch_wait_timeout_s=0.005)
    async def encode(self, texts: list[str]) -> list[list[float]]:
        return [v.tolist() for v in self.encoder.encode(texts)]


@serve.deployment(num_replicas=1, ray_actor_options={"num_cpus": 0.1}, max_ongoing_requests=1000)
class UserState:
    """The single holder of real-time user state, backed by the durable event log."""

    def __init__(self):
        self.key = None
        self.service = None
        self.log = None
        self.state: dict = {}
        self.lock = threading.Lock()

    def reconfigure(self, config: dict) -> None:
        from interestrec.recommend.service import RecommenderService
        from interestrec.recommend.state import EventLog, rebuild

        key = (config["artifacts"], _event_log_dir(config))
        if key == self.key:
            return
        service = RecommenderService(config["artifacts"])
        log = EventLog(_event_log_dir(config))
        with self.lock:  # no append may slip between the replay and the swap
            state, _ = rebuild(log, service.initial_state, service.apply_events)  # artifacts + log
            self.service, self.log, self.state, self.key = service, log, state, key

    def add(self, user_id: int, events: list[dict]) -> dict:
        import time

        now = int(time.time())
        events = [{**e, "timestamp": e.get("timestamp") or now} for e in events]
        with self.lock:
            out = _errors(self.service.apply_events, user_id, events, self.state.get(user_id))  # validates ids first
            if "ok" not in out:
                return out
            new = out["ok"]
            self.log.append(user_id, events)  # durable before acknowledging
            self.state[user_id] = new
        return {"ok": {"user_id": user_id, "cluster": new.cluster, "events": len(events), "fresh_events": new.events}}

    async def get(self, user_id: int):  # on the event loop: a dict lookup needs no thread hand-off
        return self.state.get(user_id)


@serve.deployment(ray_actor_options={"num_cpus": 0.25}, max_ongoing_requests=32,
                  autoscaling_config={"min_replicas": 1, "max_replicas": 2, "target_ongoing_requests": 8})
class Recommender:
    """CPU recommender replica: the fused model over the current artifact version."""

    def __init__(self):
        self.service = None
        self.path = None
        ctx = serve.get_replica_context()
        self.replica = ctx.replica_id.unique_id if ctx else "local"

    def reconfigure(self, config: dict) -> None:
        from interestrec.recommend.service import RecommenderService

        if config["artifacts"] != self.path:
            service = RecommenderService(config["artifacts"])  # load fully, then swap: no request sees half a model
            self.service, self.path = service, config["artifacts"]

    def call(self, method: str, *args, **kwargs) -> dict:
        if method not in ("recommend", "recommend_history", "interests", "clusters", "cluster"):
            raise ValueError(f"no such method {method}")
        service = self.service
        out = _errors(getattr(service, method), *args, **kwargs)
        if "ok" in out and isinstance(out["ok"], dict) and method.startswith("recommend"):
            out["ok"]["replica"] = self.replica
        return out

    def version(self) -> dict:
        return {"version": self.service.version, "artifacts": self.path, "replica": self.replica}


app = FastAPI(title="interestrec", description="Interest-cluster recommender")


@app.middleware("http")
async def limit_body(request: Request, call_next):
    size = request.headers.get("content-length")
    if size is not None and (not size.isdigit() or int(size) > MAX_BODY):
        return JSONResponse({"detail": f"request body over {MAX_BODY} bytes"}, status_code=413)
    if size is None and request.method in ("POST", "PUT", "PATCH"):  # chunked: count while reading
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_BODY:
                return JSONResponse({"detail": f"request body over {MAX_BODY} bytes"}, status_code=413)
        request._body = body
    return await call_next(request)


async def _remote(method, *args, idempotent: bool = True, **kwargs):
    """Call a deployment handle method without ever hanging the client.

    Each attempt is bounded by ``ATTEMPT_TIMEOUT_S`` and all attempts by ``DEADLINE_S``. Reads are retried
    while a killed replica is replaced (a call routed to a dead replica may neither fail nor answer);
    non-idempotent calls are retried only when Serve rejected them before running them.
    """
    import ray.exceptions as rex
    from ray.serve.exceptions import BackPressureError, DeploymentUnavailableError

    rejected = (DeploymentUnavailableError, BackPressureError)
    lost = (rex.ActorDiedError, rex.ActorUnavailableError, rex.RayActorError, asyncio.TimeoutError)
    deadline = asyncio.get_running_loop().time() + DEADLINE_S
    last = None
    while asyncio.get_running_loop().time() < deadline:
        left = deadline - asyncio.get_running_loop().time()
        try:
            return await asyncio.wait_for(method.remote(*args, **kwargs), min(ATTEMPT_TIMEOUT_S, left))
        except rejected as e:
            last = e
        except lost as e:
            if not idempotent:
                raise HTTPException(503, "the state holder restarted while handling this request; "
                                         "it may or may not have been applied") from None
            last = e
        await asyncio.sleep(0.2)
    raise HTTPException(503, f"service temporarily unavailable ({type(last).__name__}); retry")


def _unwrap(out: dict):
    if "error" in out:
        raise HTTPException(out["error"], out["detail"])
    return out["ok"]


@serve.deployment(ray_actor_options={"num_cpus": 0.1}, max_ongoing_requests=1000)
@serve.ingress(app)
class Api:
    def __init__(self, recommender, state, encoder, token: str | None = None):
        self.rec, self.state, self.encoder = recommender, state, encoder
        self.token = token or os.environ.get("INTERESTREC_TOKEN") or None

    @app.get("/healthz")
    async def healthz(self):
        return {"status": "ok"}

    @app.get("/version")
    async def version(self):
        return await _remote(self.rec.version)

    @app.post("/recommend")
    async def recommend(self, req: RecommendRequest):
        if req.history:
            text_vec = None
            if req.text:
                import numpy as np

                text_vec = np.asarray(await _remote(self.encoder.encode, req.text), np.float32)
            body = _unwrap(await _remote(self.rec.call, "recommend_history", [h.model_dump() for h in req.history],
                                         req.k, text_vec, req.diversity))
            return {**body, "user_id": req.user_id}
        if req.user_id is None:
            raise HTTPException(422, "give either user_id or a non-empty history")
        state = await _remote(self.state.get, req.user_id)
        return _unwrap(await _remote(self.rec.call, "recommend", req.user_id, req.k, req.exclude_seen, req.diversity, state))

    @app.post("/events")
    async def events(self, req: EventsRequest, authorization: str | None = Header(None)):
        if self.token and authorization != f"Bearer {self.token}":
            raise HTTPException(401, "POST /events needs 'Authorization: Bearer <token>'",
                                headers={"WWW-Authenticate": "Bearer"})
        return _unwrap(await _remote(self.state.add, req.user_id, [e.model_dump() for e in req.events], idempotent=False))

    @app.get("/users/{user_id}/interests")
    async def interests(self, user_id: int):
        state = await _remote(self.state.get, user_id)
        return _unwrap(await _remote(self.rec.call, "interests", user_id, state))

    @app.get("/clusters")
    async def clusters(self):
        return _unwrap(await _remote(self.rec.call, "clusters"))

    @app.get("/clusters/{cid}")
    async def cluster(self, cid: int):
        return _unwrap(await _remote(self.rec.call, "cluster", cid))


def build_app(args: dict):
    """Application builder for ``serve run serving.app:build_app artifacts=DIR`` and ``serving/config.yaml``.

    Args (strings from the CLI are accepted): ``artifacts`` (required), ``event_log`` (default: the
    artifacts path), ``token`` (bearer token for ``POST /events``; also ``$INTERESTREC_TOKEN``), ``model``
    (encoder directory), ``recommender_replicas`` (a fixed count instead of autoscaling), ``encoder_gpus``
    (default: 1 when the cluster has a GPU).
    """
    import ray

    if not args.get("artifacts"):
        raise ValueError("build_app needs 'artifacts' (a pipeline output or publish/vN directory)")
    cfg = {"artifacts": str(args["artifacts"]), "event_log": args.get("event_log")}
    gpus = args.get("encoder_gpus")
    if gpus is None:
        gpus = 1 if ray.is_initialized() and ray.cluster_resources().get("GPU", 0) >= 1 else 0
    rec = Recommender.options(user_config=cfg)
    if args.get("recommender_replicas"):
        rec = Recommender.options(user_config=cfg, num_replicas=int(args["recommender_replicas"]), autoscaling_config=None)
    encoder = Encoder.options(ray_actor_options={"num_cpus": 0.1, "num_gpus": float(gpus)})
    token = args.get("token") or None
    return Api.bind(rec.bind(), UserState.options(user_config=cfg).bind(), encoder.bind(args.get("model")), token)
