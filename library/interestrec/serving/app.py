"""The Ray Serve application: recommender replicas that answer HTTP themselves, plus a batched text encoder.

    serve run serving/config.yaml                                      # local, 127.0.0.1:8000
    serve run interestrec.serving.app:build_app artifacts=out/demo     # the same from the CLI
    serve deploy serving/cluster.yaml                                  # on a running cluster

One hop for the hot path: the HTTP proxy routes straight to a ``Recommender`` replica (FastAPI ingress);
concurrent known-user requests are scored together (``@serve.batch``: one store round trip and one
matrix product per batch). Cold requests with text call the ``Encoder`` deployment (batched too).

Fresh events go to the durable store (:mod:`interestrec.serving.store`) before ``POST /events`` answers;
every replica reads a user's newest events from the store on each request, so all replicas agree and a
restarted replica loses nothing. A write the store did not confirm answers 503 with ``Retry-After``: the
client retries with the same idempotency key, and a batch already applied comes back as a duplicate.

Writes always need a bearer token (``$INTERESTREC_TOKEN``, the ``token`` arg, or one generated at start and
logged once). With open reads (no ``read_token``) a caller sees no user's history: not its items
(``exclude_seen`` stays on, explanations leave them out) and not its size.

The artifact version is each deployment's ``user_config`` (``{"artifacts": ROOT, "version": ID}``): a new
version goes through ``reconfigure`` (loaded next to the old one, swapped in one assignment) without
restarting replicas, and every replica serves the same pinned version id.

Clients speak the dataset's original user and item ids (int64 or string); each handler translates them
once with the served version's :class:`~interestrec.serving.idtypes.IdCodec` (requests in, every id of the
response out), and the store keys fresh events by the original ids.
"""

import asyncio
import hmac
import logging
import os
import uuid
from typing import Annotated

from fastapi import FastAPI, Header, HTTPException, Path, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from ray import serve
from ray.serve.exceptions import RayServeException

from interestrec.recommend.config import ServeConfig
from interestrec.serving import schemas as S
from interestrec.serving.errors import (
    Forbidden,
    InvalidId,
    KeyConflict,
    StoreError,
    Unauthorized,
    Unavailable,
    UnknownId,
)
from interestrec.serving.idtypes import IdCodec, PathId
from interestrec.serving.versions import pin_version, resolve_pinned

log = logging.getLogger("ray.serve")
PathInt64 = Annotated[int, Path(ge=-(2**63), le=2**63 - 1)]
MAX_BODY = 1 << 20


class BodyTooLarge(HTTPException):
    """A request body over ``MAX_BODY`` bytes (413; an HTTPException so body parsing passes it through)."""

    def __init__(self):
        super().__init__(413, f"request body over {MAX_BODY} bytes")


app = FastAPI(title="interestrec", version="1",
              description="Interest-cluster recommender: recommendations with explanations, users, clusters, "
                          "fresh events.",
              responses={401: {"model": S.ErrorResponse}, 403: {"model": S.ErrorResponse}, 404: {"model": S.ErrorResponse},
                         409: {"model": S.ErrorResponse}, 413: {"model": S.ErrorResponse},
                         503: {"model": S.ErrorResponse}})


def _install_error_handlers(api: FastAPI) -> None:
    """Typed errors → HTTP status codes, in one place."""
    from interestrec.recommend.errors import InvalidRequest, NotFound

    codes = [(NotFound, 404), (UnknownId, 404), (InvalidId, 422), (KeyConflict, 409), (InvalidRequest, 422),
             (StoreError, 503), (Unavailable, 503), (Unauthorized, 401), (Forbidden, 403)]
    for exc, code in codes:
        def handler(request: Request, e: Exception, code=code):
            headers = {"WWW-Authenticate": "Bearer"} if code == 401 else {"Retry-After": "1"} if code == 503 else None
            return JSONResponse({"detail": str(e)}, status_code=code, headers=headers)

        api.add_exception_handler(exc, handler)

    def invalid(request: Request, e: RequestValidationError):  # never echo the input: it may not be JSON-able
        def clean(x):
            return x if isinstance(x, int) else str(x).encode("utf-8", "replace").decode("utf-8")

        detail = [{"loc": [clean(p) for p in err.get("loc", ())], "msg": clean(err.get("msg", "")),
                   "type": clean(err.get("type", ""))} for err in e.errors()]
        return JSONResponse({"detail": detail}, status_code=422)

    api.add_exception_handler(RequestValidationError, invalid)


_install_error_handlers(app)
_METRICS: dict = {}


def _metrics() -> dict:
    if not _METRICS:
        from ray.serve.metrics import Counter

        _METRICS["requests"] = Counter("interestrec_requests", description="HTTP requests by route and status",
                                       tag_keys=("route", "status"))
        _METRICS["cold"] = Counter("interestrec_cold_starts", description="requests answered from a client history")
        _METRICS["fallbacks"] = Counter("interestrec_fallbacks",
                                        description="requests answered without fresh state (store unavailable)")
    return _METRICS


class Guard:
    """Pure ASGI middleware (no per-request task hand-off): caps the body size, counts requests by route and status.

    A declared ``content-length`` over the cap is refused before reading; a chunked body is counted as it
    is read and refused once over the cap (:class:`BodyTooLarge`, mapped to 413).
    """

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        status = [0]

        async def counted_send(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        size = dict(scope["headers"]).get(b"content-length")
        if size is not None and (not size.isdigit() or int(size) > MAX_BODY):
            await JSONResponse({"detail": f"request body over {MAX_BODY} bytes"}, status_code=413)(scope, receive,
                                                                                                  counted_send)
        else:
            seen = [0]

            async def limited_receive():
                message = await receive()
                if message["type"] == "http.request":
                    seen[0] += len(message.get("body", b""))
                    if seen[0] > MAX_BODY:
                        raise BodyTooLarge()
                return message

            await self.app(scope, limited_receive, counted_send)
        route = scope.get("route")
        _metrics()["requests"].inc(tags={"route": getattr(route, "path", "unmatched"), "status": str(status[0])})


app.add_middleware(Guard)


def _authorised(expected: str | None, header: str | None) -> bool:
    if expected is None:
        return True
    return hmac.compare_digest((header or "").encode(), f"Bearer {expected}".encode())


def _idempotency_key(body: str | None, header: str | None) -> str:
    """The batch's key: the ``idempotency_key`` field or the ``Idempotency-Key`` header (equal when both are
    sent), else a new one (returned in the answer, so a client can still retry with it)."""
    from interestrec.recommend.errors import InvalidRequest

    if header is not None:
        if not 1 <= len(header) <= S.MAX_KEY:
            raise InvalidRequest(f"Idempotency-Key must have 1 to {S.MAX_KEY} characters")
        if body is not None and body != header:
            raise InvalidRequest("the Idempotency-Key header and the idempotency_key field differ")
    return body or header or uuid.uuid4().hex


@serve.deployment(ray_actor_options={"num_cpus": 0.25}, max_ongoing_requests=64)
class Encoder:
    """Cold-start text encoding, batched across concurrent requests (GPU when the replica has one)."""

    def __init__(self, model: str | None = None, max_tokens: int = 256):
        from interestrec.encode.encoder import TextEncoder

        self.encoder = TextEncoder(model, device="auto", max_length=max_tokens, num_threads=1)
        self.version = None

    def reconfigure(self, config: dict) -> None:
        """Check the pinned version's item vectors against this encoder: a mismatch fails start-up."""
        from interestrec.serving.versions import check_encoder_dim

        path, version = resolve_pinned(config)
        check_encoder_dim(path, version, self.encoder.dim)
        self.version = version

    @serve.batch(max_batch_size=16, batch_wait_timeout_s=0.005)
    async def encode(self, texts: list[str]) -> list[list[float]]:
        return [v.tolist() for v in self.encoder.encode(texts)]


@serve.deployment(ray_actor_options={"num_cpus": 0.5}, max_ongoing_requests=64, health_check_period_s=2)
@serve.ingress(app)
class Recommender:
    """The model holder: answers HTTP itself, reads fresh state from the store, scores batches together."""

    def __init__(self, config: ServeConfig, encoder=None, model_dim: int | None = None):
        from threadpoolctl import threadpool_limits

        from interestrec.serving.stores import open_store

        # one BLAS thread per replica CPU: small products on shared cores are far slower multi-threaded
        threadpool_limits(max(1, int(config.recommender_cpus)))
        self.cfg = config
        self.encoder = encoder
        self.store = open_store(config.store)
        self.service = None
        self.codecs: dict[str, IdCodec] = {}  # version -> its id translation
        try:
            self.replica = serve.get_replica_context().replica_id.unique_id
        except RayServeException:  # constructed outside Serve (tests, notebooks)
            self.replica = "local"
        self._known.set_max_batch_size(config.max_batch_size)
        self._known.set_batch_wait_timeout_s(config.batch_wait_timeout_s)
        if config.token is None:
            log.warning("interestrec: POST /events is closed (no `token` configured; build_app generates one)")
        if config.read_token is None:
            log.warning("interestrec: read endpoints are open (no `read_token`); explanations leave out history items")

    def reconfigure(self, config: dict) -> None:
        from interestrec.recommend.service import RecommenderService

        path, version = resolve_pinned(config)
        if self.service is not None and self.service.version == version:
            return
        service = RecommenderService(path, half_life_days=self.cfg.half_life_days)  # load fully, then swap
        if service.version != version:
            raise RuntimeError(f"pinned version {version} but the artifacts say {service.version}")
        old = self.service.version if self.service is not None else None
        codec = IdCodec(service.arts.user_map, service.arts.item_map).prepared()
        self.codecs = {**{v: c for v, c in self.codecs.items() if v == old}, version: codec}  # in-flight: old
        self.service = service

    def check_health(self) -> None:
        if self.service is None:
            raise RuntimeError("the model is not loaded yet")

    # ------------------------------------------------------------------ helpers
    def _read_auth(self, authorization: str | None) -> bool:
        """True when reads are authorised by a token; raises when a configured read token is missing/wrong."""
        if not _authorised(self.cfg.read_token, authorization):
            raise Unauthorized("this endpoint needs 'Authorization: Bearer <read_token>'")
        return self.cfg.read_token is not None

    @staticmethod
    def _check_exclude_seen(exclude_seen: bool, authed: bool) -> None:
        """Without read auth a user's own history is never shown, so it is never left in the ranking either:
        ``exclude_seen: false`` at a large ``k`` would list it."""
        if not exclude_seen and not authed:
            raise Forbidden("exclude_seen: false shows the user's history; it needs read auth "
                            "('Authorization: Bearer <read_token>' on a deployment with a read_token)")

    def _check_times(self, events: list[S.HistoryEvent]) -> None:
        from interestrec.recommend.errors import InvalidRequest

        lo, hi = self.cfg.min_timestamp, self.cfg.max_timestamp
        for e in events:
            if e.timestamp is not None and not lo <= e.timestamp <= hi:
                raise InvalidRequest(f"timestamp {e.timestamp} outside [{lo}, {hi}]")

    def _fresh_states(self, service, codec: IdCodec, users: list[int]) -> tuple[list, bool]:
        """Fresh states of user indices: the store is read by original ids, its events mapped to indices."""

        try:
            rows = self.store.fresh_many([codec.store_key(u) for u in users], self.cfg.max_fresh_events)
        except StoreError:
            _metrics()["fallbacks"].inc()
            return [None] * len(users), False
        return [service.state_from_events(u, codec.event_indices(r)) if r else None for u, r in zip(users, rows)], True

    def _known_sync(self, service, reqs: list[tuple]) -> list:
        """Score a batch of known-user requests (original ids, translated here with the batch's version):
        one store round trip, one matrix product per parameter group."""
        from interestrec.recommend.errors import NotFound

        codec = self.codecs[service.version]
        out: list = [None] * len(reqs)
        ok, users, excludes = [], {}, {}
        for j, (original, *_rest) in enumerate(reqs):
            try:
                users[j] = codec.user(original)
                service.user_index(users[j])
                excludes[j] = codec.item_list(reqs[j][4] or [], skip_unknown=True)
                ok.append(j)
            except (NotFound, UnknownId, InvalidId) as e:
                out[j] = e
        states, _ = self._fresh_states(service, codec, [users[j] for j in ok])
        state_of = dict(zip(ok, states))
        groups: dict[tuple, list[int]] = {}
        for j in ok:
            groups.setdefault(reqs[j][1:4], []).append(j)
        for (k, exclude_seen, diversity), js in groups.items():
            try:
                bodies = service.recommend_many([users[j] for j in js], k, exclude_seen, diversity,
                                                [state_of[j] for j in js], [excludes[j] for j in js],
                                                [reqs[j][5] for j in js])
            except Exception as e:  # a typed error of this group goes back to each of its callers
                bodies = [e] * len(js)
            for j, b in zip(js, bodies):
                if isinstance(b, dict):
                    st = state_of[j]
                    fresh = (st.events if st is not None else 0) if reqs[j][5] else None  # a history size: read auth
                    b = {**codec.out(b), "fresh_events": fresh, "replica": self.replica}
                out[j] = b
        return out

    @serve.batch(max_batch_size=16, batch_wait_timeout_s=0.002)
    async def _known(self, reqs: list[tuple]) -> list:
        service = self.service  # one version for the whole batch
        return await asyncio.to_thread(self._known_sync, service, reqs)

    # ------------------------------------------------------------------ routes
    @app.get("/healthz")
    async def healthz(self) -> dict:
        return {"status": "ok" if self.service is not None else "loading"}

    @app.get("/version", response_model=S.VersionResponse)
    async def version(self):
        return {"version": self.service.version, "replica": self.replica}

    @app.post("/recommend", response_model=S.RecommendResponse)
    async def recommend(self, req: S.RecommendRequest, authorization: str | None = Header(None)):
        from interestrec.recommend.errors import InvalidRequest

        authed = self._read_auth(authorization)
        service = self.service
        if req.history:
            self._check_times(req.history)
            _metrics()["cold"].inc()
            text_vec = None
            if req.text:
                text_vec = await self._encode(req.text)
            codec = self.codecs[service.version]
            idx = codec.item_list([h.item_id for h in req.history])
            history = [{**h.model_dump(), "item_id": i} for h, i in zip(req.history, idx)]
            body = service.recommend_history(history, req.k, text_vec, req.diversity,
                                             codec.item_list(req.exclude_items, skip_unknown=True))
            return {**codec.out(body), "user_id": req.user_id, "replica": self.replica}
        if req.user_id is None:
            raise InvalidRequest("give either user_id or a non-empty history")
        self._check_exclude_seen(req.exclude_seen, authed)
        out = await self._known((req.user_id, req.k, req.exclude_seen, req.diversity, req.exclude_items, authed))
        if isinstance(out, Exception):
            raise out
        return out

    async def _encode(self, text: str):
        import numpy as np
        import ray.exceptions as rex
        from ray.serve.exceptions import BackPressureError, DeploymentUnavailableError

        if self.encoder is None:
            raise Unavailable("text encoding is not enabled in this deployment")
        try:
            vec = await asyncio.wait_for(self.encoder.encode.remote(text), 10.0)
        except (rex.RayActorError, rex.ActorUnavailableError, BackPressureError, DeploymentUnavailableError,
                asyncio.TimeoutError) as e:
            raise Unavailable(f"the text encoder is unavailable ({type(e).__name__}); retry") from None
        return np.asarray(vec, np.float32)

    @app.post("/recommend/batch", response_model=S.BatchRecommendResponse)
    async def recommend_batch(self, req: S.BatchRecommendRequest, authorization: str | None = Header(None)):
        authed = self._read_auth(authorization)
        self._check_exclude_seen(req.exclude_seen, authed)
        out = await asyncio.gather(*(self._known((u, req.k, req.exclude_seen, req.diversity, None, authed))
                                     for u in req.user_ids))
        for r in out:
            if isinstance(r, Exception):
                raise r
        return {"results": out}

    @app.post("/events", response_model=S.EventsResponse)
    async def events(self, req: S.EventsRequest, authorization: str | None = Header(None),
                     idempotency_key: str | None = Header(None, alias="Idempotency-Key")):
        if self.cfg.token is None:
            raise Unauthorized("POST /events is closed: this deployment has no write token")
        if not _authorised(self.cfg.token, authorization):
            raise Unauthorized("POST /events needs 'Authorization: Bearer <token>'")
        key = _idempotency_key(req.idempotency_key, idempotency_key)
        self._check_times(req.events)
        service = self.service
        codec = self.codecs[service.version]
        user = codec.user(req.user_id)
        items = codec.item_list([e.item_id for e in req.events])
        service.validate_events(user, [{**e.model_dump(), "item_id": i} for e, i in zip(req.events, items)])
        # stored under the canonical original ids (stable across versions; the export re-ingests as is);
        # timestamps as sent: the store stamps missing ones after fingerprinting, so a retry is a duplicate
        originals = codec.original_items(items)
        events = [{**e.model_dump(), "item_id": o} for e, o in zip(req.events, originals)]
        user_key = codec.store_key(user)
        try:
            ack = await asyncio.to_thread(self.store.append, user_key, events, key)  # durable before the answer
        except KeyConflict:
            raise
        except Exception as e:  # unreachable, timed out, anything: whether it was applied is unknown here
            log.warning("interestrec: POST /events batch %s not confirmed by the store: %r", key, e,
                        exc_info=not isinstance(e, StoreError))
            raise StoreError(f"the event store did not confirm the write ({e}); retry with the same "
                             f"Idempotency-Key ('{key}'): a batch already applied is answered as a duplicate") from e
        return {"user_id": user_key, "events": ack.n, "first_seq": ack.first_seq, "duplicate": ack.duplicate,
                "idempotency_key": key}

    @app.get("/users/{user_id}/interests", response_model=S.InterestsResponse)
    async def interests(self, user_id: Annotated[PathId, Path()], authorization: str | None = Header(None)):
        authed = self._read_auth(authorization)
        service = self.service
        codec = self.codecs[service.version]
        user = codec.user(user_id)
        service.user_index(user)
        (state,), _ = await asyncio.to_thread(self._fresh_states, service, codec, [user])
        body = codec.out(service.interests(user, state))
        return body if authed else {**body, "history_size": None, "fresh_events": None}  # sizes: read auth only

    @app.get("/users/{user_id}/similar", response_model=S.SimilarResponse)
    async def similar(self, user_id: Annotated[PathId, Path()], n: int = 10, k: int = 10, authorization: str | None = Header(None)):
        from interestrec.recommend.errors import InvalidRequest

        authed = self._read_auth(authorization)
        if not 1 <= n <= 100:
            raise InvalidRequest("n must be in [1, 100]")
        service = self.service
        codec = self.codecs[service.version]
        user = codec.user(user_id)
        service.user_index(user)
        (state,), _ = await asyncio.to_thread(self._fresh_states, service, codec, [user])
        body = codec.out(service.similar(user, n, k, state))
        return body if authed else {**body, "users": []}  # other users' ids only to an authorised caller

    @app.get("/clusters", response_model=S.ClustersResponse)
    async def clusters(self, authorization: str | None = Header(None)):
        self._read_auth(authorization)
        return self.service.clusters()

    @app.get("/clusters/{cid}")
    async def cluster(self, cid: PathInt64, authorization: str | None = Header(None)) -> dict:
        self._read_auth(authorization)
        service = self.service
        return self.codecs[service.version].out(service.cluster(cid))


def build_app(args: dict):
    """Application builder (``serve run interestrec.serving.app:build_app artifacts=DIR …`` or YAML ``args``).

    Args (strings from the CLI are accepted): ``artifacts`` (a pipeline output / publish root; its
    ``publish/LATEST`` is resolved once here and pinned), ``version`` (pin a version id instead),
    ``model`` (encoder directory; ``text: false`` deploys no encoder), and any
    :class:`~interestrec.recommend.config.ServeConfig` field (``store``, ``token``, ``read_token``, …;
    the tokens default to ``$INTERESTREC_TOKEN`` / ``$INTERESTREC_READ_TOKEN``). Writes are never open: with
    no write token one is generated here, once per build (a redeploy that changes only ``user_config``
    keeps it), and logged.
    A YAML ``deployments[].user_config`` overrides the pinned version without a restart.
    """
    args = dict(args)
    artifacts = args.pop("artifacts", None)
    version = args.pop("version", None)
    model = args.pop("model", None)
    text = str(args.pop("text", True)).lower() not in ("false", "0", "no")
    encoder_gpus = float(args.pop("encoder_gpus", 0) or 0)
    for key, env in (("token", "INTERESTREC_TOKEN"), ("read_token", "INTERESTREC_READ_TOKEN")):
        if not args.get(key) and os.environ.get(env):
            args[key] = os.environ[env]
    for key in ("token", "read_token"):
        if str(args.get(key) or "").startswith("change-me"):
            raise ValueError(f"serve {key} is still a placeholder ({args[key]!r}, as in serving/cluster.yaml): "
                             "set a secret of your own")
    if not args.get("token"):
        import secrets

        args["token"] = secrets.token_urlsafe(24)
        log.warning("interestrec: no write token configured ($INTERESTREC_TOKEN or `token`); POST /events needs "
                    "this generated one: 'Authorization: Bearer %s'", args["token"])
    cfg = ServeConfig.from_args(args)
    if cfg.read_token is None:
        log.warning("interestrec: reads open to anyone (no read_token): users' histories and their sizes are hidden")
    user_config = pin_version(artifacts, version) if artifacts else None
    opts = {"num_replicas": cfg.recommender_replicas, "max_ongoing_requests": cfg.max_ongoing_requests,
            "ray_actor_options": {"num_cpus": cfg.recommender_cpus}}
    if user_config is not None:
        opts["user_config"] = user_config
    encoder = None
    if text:
        eopts = {"num_replicas": cfg.encoder_replicas, "ray_actor_options": {"num_cpus": 0.25, "num_gpus": encoder_gpus}}
        if user_config is not None:
            eopts["user_config"] = user_config
        encoder = Encoder.options(**eopts).bind(model, cfg.max_tokens)
    return Recommender.options(**opts).bind(cfg, encoder)
