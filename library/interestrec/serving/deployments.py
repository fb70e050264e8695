"""The two Ray Serve deployments: ``Recommender`` (the model holder; FastAPI ingress, so the proxy routes
HTTP straight to it) and ``Encoder`` (cold-start text, batched). :mod:`interestrec.serving.builder` binds them.

Concurrent known-user requests are scored together: each is a :class:`KnownRequest`, and those that arrive
while a batch is scored form the next one (:class:`~interestrec.serving.coalesce.Coalescer`: one store round
trip on a thread and one matrix product per parameter group on the replica's loop; an idle replica scores a
request at once). Heavy requests (``/recommend/batch``, MMR) run in the replica's
:class:`~interestrec.serving.limits.HeavyPool` instead, off the light requests' path; every request's cost is
checked first (:mod:`interestrec.serving.limits`). The artifact version comes
in through ``reconfigure`` (``user_config``): loaded next to the old one, swapped in one assignment.
"""

import asyncio
import logging
from typing import Annotated

from fastapi import Header, Path
from ray import serve
from ray.serve.exceptions import RayServeException

from interestrec.recommend.config import ServeConfig
from interestrec.recommend.errors import InvalidRequest
from interestrec.serving import http, limits
from interestrec.serving import schemas as S
from interestrec.serving.coalesce import Coalescer
from interestrec.serving.idtypes import IdCodec, PathId
from interestrec.serving.items import ItemRoutes
from interestrec.serving.scoring import KnownRequest, ReplicaWork
from interestrec.serving.versions import resolve_pinned

__all__ = ["Encoder", "KnownRequest", "Recommender", "app"]
app = http.make_app()

log = logging.getLogger("ray.serve")
PathInt64 = Annotated[int, Path(ge=-(2**63), le=2**63 - 1)]


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


@serve.deployment(ray_actor_options={"num_cpus": 0.5}, max_ongoing_requests=256, health_check_period_s=2)
@serve.ingress(app)
class Recommender(ReplicaWork, ItemRoutes):
    """The model holder: answers HTTP itself, reads fresh state from the store, scores batches together."""

    def __init__(self, config: ServeConfig, encoder=None, model_dim: int | None = None):
        from threadpoolctl import threadpool_limits

        from interestrec.serving.stores import open_store

        # one BLAS thread per replica CPU: small products on shared cores are far slower multi-threaded
        threadpool_limits(max(1, int(config.recommender_cpus)))
        self.cfg = config
        self.encoder = encoder
        self.store = open_store(config.store)
        self.heavy = limits.HeavyPool(config.heavy_slots)
        http.configure_bodies(config.body_timeout_s, config.body_readers)
        self.service = None
        self.codecs: dict[str, IdCodec] = {}  # version -> its id translation
        try:
            self.replica = serve.get_replica_context().replica_id.unique_id
        except RayServeException:  # constructed outside Serve (tests, notebooks)
            self.replica = "local"
        # known-user requests that arrive while a batch is scored are scored together next
        self._known = Coalescer(self._known_batch, config.max_batch_size, config.batch_wait_timeout_s, name="known")
        if config.token is None:
            log.warning("interestrec: POST /events is closed (no `token` configured; build_app generates one)")
        if config.read_token is None:
            log.warning("interestrec: read endpoints are open (no `read_token`); explanations leave out history items")

    def reconfigure(self, config: dict) -> None:
        from interestrec.recommend.service import RecommenderService

        path, version = resolve_pinned(config)
        if self.service is not None and self.service.version == version:
            return
        service = RecommenderService(path, half_life_days=self.cfg.half_life_days,  # load fully, then swap
                                     candidates=self.cfg.mmr_candidates, open_depth=self.cfg.open_max_k,
                                     sim_cache_mb=self.cfg.sim_cache_mb)
        if service.version != version:
            raise RuntimeError(f"pinned version {version} but the artifacts say {service.version}")
        old = self.service.version if self.service is not None else None
        codec = IdCodec(service.arts.user_map, service.arts.item_map).prepared()
        self.codecs = {**{v: c for v, c in self.codecs.items() if v == old}, version: codec}  # in-flight: old
        if self._live:
            self._set_live(service)  # the live items this version's catalogue does not have
        self.service = service

    def check_health(self) -> None:
        if self.service is None:
            raise RuntimeError("the model is not loaded yet")

    async def _known_batch(self, reqs: list[KnownRequest]) -> list:
        """One batch of known-user requests, all scored with the version loaded when it starts (on the loop:
        a batch is at most ``max_batch_size`` light requests; heavy ones go to the pool)."""
        return await self._known_batch_on_loop(self.service, reqs)

    # ------------------------------------------------------------------ routes
    @app.get("/healthz")
    async def healthz(self) -> dict:
        return {"status": "ok" if self.service is not None else "loading"}

    @app.get("/version", response_model=S.VersionResponse)
    async def version(self):
        return {"version": self.service.version, "replica": self.replica}

    @app.post("/recommend", response_model=S.RecommendResponse)
    async def recommend(self, req: S.RecommendRequest, authorization: str | None = Header(None)):
        authed = http.read_auth(self.cfg.read_token, authorization)
        if not req.history:
            http.check_exclude_seen(req.exclude_seen, authed)
        limits.check_k(req.k, self.cfg)
        await self._live_items()
        service = self.service
        heavy = req.diversity == "mmr"  # off the light path, in the bounded pool
        if req.history:
            self._check_times(req.history)
            http.metrics()["cold"].inc()
            text_vec = None
            if req.text:
                text_vec = await self._encode(req.text)
            codec = self.codecs[service.version]
            idx = await self._item_refs(codec, [h.item_id for h in req.history])  # catalogue or live items
            history = [{**h.model_dump(), "item_id": i} for h, i in zip(req.history, idx)]
            args = (history, req.k, text_vec, req.diversity, codec.item_refs(req.exclude_items, self._is_live, True))
            body = await self.heavy.run(service.recommend_history, *args) if heavy else service.recommend_history(*args)
            return {**codec.out(body), "user_id": req.user_id, "replica": self.replica}
        if req.user_id is None:
            raise InvalidRequest("give either user_id or a non-empty history")
        limits.check_open_depth(req.k, len(req.exclude_items), authed, self.cfg)
        one = KnownRequest(req.user_id, req.k, req.exclude_seen, req.diversity, req.exclude_items, authed)
        out = (await self.heavy.run(self._known_sync, service, [one]))[0] if heavy else await self._known(one)
        if isinstance(out, Exception):
            raise out
        return out

    @app.post("/recommend/batch", response_model=S.BatchRecommendResponse)
    async def recommend_batch(self, req: S.BatchRecommendRequest, authorization: str | None = Header(None)):
        authed = http.read_auth(self.cfg.read_token, authorization)
        http.check_exclude_seen(req.exclude_seen, authed)
        limits.check_k(req.k, self.cfg)
        limits.check_batch(len(req.user_ids), req.k, self.cfg)
        limits.check_open_depth(req.k, 0, authed, self.cfg)
        await self._live_items()
        reqs = [KnownRequest(u, req.k, req.exclude_seen, req.diversity, None, authed) for u in req.user_ids]
        out = await self.heavy.run(self._known_sync, self.service, reqs)  # one pool slot, one store round trip
        for r in out:
            if isinstance(r, Exception):
                raise r
        return {"results": out}

    @app.post("/events", response_model=S.EventsResponse)
    async def events(self, req: S.EventsRequest, authorization: str | None = Header(None),
                     idempotency_key: str | None = Header(None, alias="Idempotency-Key")):
        http.write_auth(self.cfg.token, authorization)
        key = http.batch_key(req.idempotency_key, idempotency_key)
        self._check_times(req.events)
        service = self.service
        codec = self.codecs[service.version]
        user = codec.user(req.user_id)
        items = await self._item_refs(codec, [e.item_id for e in req.events], strict=True)  # catalogue or live
        service.validate_events(user, [{**e.model_dump(), "item_id": i} for e, i in zip(req.events, items)])
        # stored under the canonical original ids (stable across versions; the export re-ingests as is);
        # timestamps as sent: the store stamps missing ones after fingerprinting, so a retry is a duplicate
        originals = codec.original_items(items)
        events = [{**e.model_dump(), "item_id": o} for e, o in zip(req.events, originals)]
        user_key = codec.store_key(user)
        ack = await http.durable_write("POST /events", key, self.store.append, user_key, events)  # before the answer
        return {"user_id": user_key, "events": ack.n, "first_seq": ack.first_seq, "duplicate": ack.duplicate,
                "idempotency_key": key}

    @app.get("/users/{user_id}/interests", response_model=S.InterestsResponse)
    async def interests(self, user_id: Annotated[PathId, Path()], authorization: str | None = Header(None)):
        authed = http.read_auth(self.cfg.read_token, authorization)
        await self._live_items()  # fresh events on live items fold in too
        service = self.service
        codec = self.codecs[service.version]
        user = codec.user(user_id)
        service.user_index(user)
        (state,), _ = await asyncio.to_thread(self._fresh_states, service, codec, [user])
        body = codec.out(service.interests(user, state, hide_history=not authed))
        return body if authed else {**body, "history_size": None, "fresh_events": None}  # sizes: read auth only

    @app.get("/users/{user_id}/similar", response_model=S.SimilarResponse)
    async def similar(self, user_id: Annotated[PathId, Path()], n: int = 10, k: int = 10, authorization: str | None = Header(None)):
        authed = http.read_auth(self.cfg.read_token, authorization)
        if not 1 <= n <= 100:
            raise InvalidRequest("n must be in [1, 100]")
        if k < 1:
            raise InvalidRequest(f"k must be at least 1, got {k}")
        limits.check_k(k, self.cfg)
        limits.check_open_depth(k, 0, authed, self.cfg)
        await self._live_items()
        service = self.service
        codec = self.codecs[service.version]
        user = codec.user(user_id)
        service.user_index(user)
        (state,), _ = await asyncio.to_thread(self._fresh_states, service, codec, [user])
        body = codec.out(service.similar(user, n, k, state, min_users=1 if authed else self.cfg.open_min_peers))
        return body if authed else {**body, "users": []}  # other users' ids only to an authorised caller

    @app.get("/clusters", response_model=S.ClustersResponse)
    async def clusters(self, authorization: str | None = Header(None)):
        http.read_auth(self.cfg.read_token, authorization)
        return self.service.clusters()

    @app.get("/clusters/{cid}")
    async def cluster(self, cid: PathInt64, authorization: str | None = Header(None)) -> dict:
        http.read_auth(self.cfg.read_token, authorization)
        service = self.service
        return self.codecs[service.version].out(service.cluster(cid))

    @app.post("/items", response_model=S.ItemsResponse)
    async def put_items(self, req: S.ItemsRequest, authorization: str | None = Header(None),
                        idempotency_key: str | None = Header(None, alias="Idempotency-Key")):
        return await self._put_items(req, authorization, idempotency_key)

    @app.get("/items/{item_id}", response_model=S.ItemOut)
    async def get_item(self, item_id: Annotated[PathId, Path()], authorization: str | None = Header(None)):
        return await self._get_item(item_id, authorization)
