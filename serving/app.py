"""Ray Serve application: FastAPI ingress → recommender (CPU) + encoder (batched) + one shared state holder.

    serve run serving/config.yaml          # local
    serve deploy serving/config.yaml       # on a cluster

The artifact directory (a pipeline output or ``publish/vN``) comes from ``user_config``; a new value
hot-loads through ``reconfigure`` without dropping requests. Fresh events go to ONE state deployment that
appends them to a durable log (fsynced before ``POST /events`` answers) and replays the log on start, so
every replica sees the same user state and no acknowledged event is lost.
"""


import os

from fastapi import FastAPI, Header, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from ray import serve

MAX_BODY = 1 << 20


class HistoryEvent(BaseModel):
    item_id: int
    timestamp: float | None = None
    event: str = Field("view", pattern="^(view|click|rate|purchase|tag|search)$")


class RecommendRequest(BaseModel):
    user_id: int | None = None
    history: list[HistoryEvent] | None = Field(None, max_length=1000)
    text: str | None = Field(None, max_length=2000)
    k: int = Field(10, ge=1, le=1000)
    exclude_seen: bool = True
    diversity: bool = False


class EventsRequest(BaseModel):
    user_id: int
    events: list[HistoryEvent] = Field(..., min_length=1, max_length=1000)


@serve.deployment(ray_actor_options={"num_cpus": 0.1})
class Encoder:
    """Cold-start text encoding, batched across concurrent requests (GPU when the replica has one)."""

    def __init__(self, model: str | None = None):
        from interestrec.encode.encoder import TextEncoder

        self.encoder = TextEncoder(model, device="auto", max_length=128, num_threads=1)

    @serve.batch(max_batch_size=16, batch_wait_timeout_s=0.01)
    async def encode(self, texts: list[str]) -> list[list[float]]:
        return [v.tolist() for v in self.encoder.encode(texts)]


@serve.deployment(ray_actor_options={"num_cpus": 0.1}, max_ongoing_requests=1000)
class UserState:
    """The single holder of real-time user state, backed by a durable event log."""

    def __init__(self):
        self.path = None
        self.service = None
        self.state: dict[int, object] = {}

    def reconfigure(self, config: dict) -> None:
        from interestrec.recommend.service import EventLog, RecommenderService

        path = config["artifacts"]
        if path == self.path:
            return
        self.service = RecommenderService(path)
        self.log = EventLog(config.get("event_log") or os.path.join(self.service.root, "events", "log.jsonl"))
        self.state = {}
        for uid, events in self.log.replay():  # rebuild from artifacts + log
            self.state[uid] = self.service.apply_events(uid, events, self.state.get(uid))
        self.path = path

    def add(self, user_id: int, events: list[dict]):
        new = self.service.apply_events(user_id, events, self.state.get(user_id))  # validates ids first
        self.log.append(user_id, events)  # durable before acknowledging
        self.state[user_id] = new
        return {"user_id": user_id, "cluster": new.cluster, "events": len(events)}

    def get(self, user_id: int):
        return self.state.get(user_id)


@serve.deployment(ray_actor_options={"num_cpus": 0.25}, max_ongoing_requests=64,
                  autoscaling_config={"min_replicas": 1, "max_replicas": 2, "target_ongoing_requests": 16})
class Recommender:
    """CPU recommender replica: the fused model over the current artifact version."""

    def __init__(self):
        self.service = None
        self.path = None

    def reconfigure(self, config: dict) -> None:
        from interestrec.recommend.service import RecommenderService

        if config["artifacts"] != self.path:
            service = RecommenderService(config["artifacts"])  # load fully, then swap: no request sees half a model
            self.service, self.path = service, config["artifacts"]

    def call(self, method: str, *args, **kwargs):
        from interestrec.recommend.service import NotFound

        try:
            return {"ok": getattr(self.service, method)(*args, **kwargs)}
        except NotFound as e:
            return {"error": 404, "detail": str(e.args[0])}

    def version(self):
        return self.service.version


app = FastAPI(title="interestrec")


@app.middleware("http")
async def limit_body(request: Request, call_next):
    size = request.headers.get("content-length")
    if size is not None and size.isdigit() and int(size) > MAX_BODY:
        return JSONResponse({"detail": f"body over {MAX_BODY} bytes"}, status_code=413)
    return await call_next(request)


@serve.deployment(ray_actor_options={"num_cpus": 0.1}, max_ongoing_requests=1000)
@serve.ingress(app)
class Api:
    def __init__(self, recommender, state, encoder, token: str | None = None):
        self.rec, self.state, self.encoder = recommender, state, encoder
        self.token = token or os.environ.get("INTERESTREC_TOKEN") or None

    async def _call(self, method: str, *args, **kwargs):
        out = await self.rec.call.remote(method, *args, **kwargs)
        if "error" in out:
            raise HTTPException(out["error"], out["detail"])
        return out["ok"]

    @app.get("/healthz")
    async def healthz(self):
        return {"status": "ok"}

    @app.get("/version")
    async def version(self):
        return {"version": await self.rec.version.remote()}

    @app.post("/recommend")
    async def recommend(self, req: RecommendRequest):
        if req.user_id is not None and not req.history:
            override = await self.state.get.remote(req.user_id)
            return await self._call("recommend", req.user_id, req.k, req.exclude_seen, req.diversity, override)
        if not req.history:
            raise HTTPException(422, "give either user_id or a non-empty history")
        text_vec = None
        if req.text:
            import numpy as np

            text_vec = np.asarray(await self.encoder.encode.remote(req.text), np.float32)
        return await self._call("recommend_history", [h.model_dump() for h in req.history], req.k, text_vec, req.diversity)

    @app.post("/events")
    async def events(self, req: EventsRequest, authorization: str | None = Header(None)):
        if self.token and authorization != f"Bearer {self.token}":
            raise HTTPException(401, "POST /events needs 'Authorization: Bearer <token>'")
        from interestrec.recommend.service import NotFound

        try:
            return await self.state.add.remote(req.user_id, [e.model_dump() for e in req.events])
        except NotFound as e:
            raise HTTPException(404, str(e.args[0])) from None
        except Exception as e:  # Ray wraps the actor's exception
            if isinstance(getattr(e, "cause", None), NotFound) or "unknown" in str(e):
                raise HTTPException(404, str(getattr(e, "cause", e))) from None
            raise

    @app.get("/users/{user_id}/interests")
    async def interests(self, user_id: int):
        return await self._call("interests", user_id, await self.state.get.remote(user_id))

    @app.get("/clusters")
    async def clusters(self):
        return await self._call("clusters")

    @app.get("/clusters/{cid}")
    async def cluster(self, cid: int):
        return await self._call("cluster", cid)


def build_app(args: dict):
    """Application builder for ``serve run serving.app:build_app artifacts=DIR`` and config.yaml."""
    cfg = {"artifacts": args["artifacts"], "event_log": args.get("event_log")}
    state = UserState.options(user_config=cfg).bind()
    rec = Recommender.options(user_config=cfg).bind()
    return Api.bind(rec, state, Encoder.bind(args.get("model")), args.get("token"))
