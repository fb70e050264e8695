"""The two Ray Serve deployments: ``Recommender`` (the model holder; FastAPI ingress, so the proxy routes
HTTP straight to it) and ``Encoder`` (cold-start text, batched). :mod:`interestrec.serving.builder` binds them.

Concurrent known-user requests are scored together: each is a :class:`KnownRequest` in a ``@serve.batch``
(one store round trip and one matrix product per parameter group). The artifact version comes in through
``reconfigure`` (``user_config``): loaded next to the old one, swapped in one assignment.
"""

import asyncio
import logging
from typing import Annotated, NamedTuple

from fastapi import Header, Path
from ray import serve
from ray.serve.exceptions import RayServeException

from interestrec.errors import UnknownIdError
from interestrec.recommend.config import ServeConfig
from interestrec.recommend.errors import InvalidRequest
from interestrec.serving import http
from interestrec.serving import schemas as S
from interestrec.serving.errors import InvalidId, KeyConflict, StoreError, Unavailable
from interestrec.serving.idtypes import IdCodec, ItemId, PathId, UserId
from interestrec.serving.versions import resolve_pinned

log = logging.getLogger("ray.serve")
PathInt64 = Annotated[int, Path(ge=-(2**63), le=2**63 - 1)]
app = http.make_app()


class KnownRequest(NamedTuple):
    """One known-user recommendation in a ``@serve.batch`` (original ids: the batch translates them with the
    version it is scored on). Requests with equal :attr:`group` share one matrix product."""

    user_id: UserId
    k: int
    exclude_seen: bool
    diversity: bool | str
    exclude_items: list[ItemId] | None  # original item ids left out of the answer (unknown ones ignored)
    authed: bool  # read auth: explanations may name history items, ``fresh_events`` is shown

    @property
    def group(self) -> tuple[int, bool, bool | str]:
        """The scoring parameters: ``(k, exclude_seen, diversity)``."""
        return self.k, self.exclude_seen, self.diversity


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
    def _check_times(self, events: list[S.HistoryEvent]) -> None:
        lo, hi = self.cfg.min_timestamp, self.cfg.max_timestamp
        for e in events:
            if e.timestamp is not None and not lo <= e.timestamp <= hi:
                raise InvalidRequest(f"timestamp {e.timestamp} outside [{lo}, {hi}]")

    def _fresh_states(self, service, codec: IdCodec, users: list[int]) -> tuple[list, bool]:
        """Fresh states of user indices: the store is read by original ids, its events mapped to indices."""
        try:
            rows = self.store.fresh_many([codec.store_key(u) for u in users], self.cfg.max_fresh_events)
        except StoreError:
            http.metrics()["fallbacks"].inc()
            return [None] * len(users), False
        return [service.state_from_events(u, codec.event_indices(r)) if r else None for u, r in zip(users, rows)], True

    def _known_sync(self, service, reqs: list[KnownRequest]) -> list:
        """Score a batch of known-user requests (original ids, translated here with the batch's version):
        one store round trip, one matrix product per parameter group."""
        codec = self.codecs[service.version]
        out: list = [None] * len(reqs)
        ok, users, excludes = [], {}, {}
        for j, r in enumerate(reqs):
            try:
                users[j] = codec.user(r.user_id)
                service.user_index(users[j])
                excludes[j] = codec.item_list(r.exclude_items or [], skip_unknown=True)
                ok.append(j)
            except (UnknownIdError, InvalidId) as e:
                out[j] = e
        states, _ = self._fresh_states(service, codec, [users[j] for j in ok])
        state_of = dict(zip(ok, states))
        groups: dict[tuple, list[int]] = {}
        for j in ok:
            groups.setdefault(reqs[j].group, []).append(j)
        for (k, exclude_seen, diversity), js in groups.items():
            try:
                bodies = service.recommend_many([users[j] for j in js], k, exclude_seen, diversity,
                                                [state_of[j] for j in js], [excludes[j] for j in js],
                                                [reqs[j].authed for j in js])
            except Exception as e:  # a typed error of this group goes back to each of its callers
                bodies = [e] * len(js)
            for j, b in zip(js, bodies):
                if isinstance(b, dict):
                    st = state_of[j]
                    fresh = (st.events if st is not None else 0) if reqs[j].authed else None  # a history size: read auth
                    b = {**codec.out(b), "fresh_events": fresh, "replica": self.replica}
                out[j] = b
        return out

    @serve.batch(max_batch_size=16, batch_wait_timeout_s=0.002)
    async def _known(self, reqs: list[KnownRequest]) -> list:
        service = self.service  # one version for the whole batch
        return await asyncio.to_thread(self._known_sync, service, reqs)

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
        service = self.service
        if req.history:
            self._check_times(req.history)
            http.metrics()["cold"].inc()
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
        http.check_exclude_seen(req.exclude_seen, authed)
        out = await self._known(KnownRequest(req.user_id, req.k, req.exclude_seen, req.diversity, req.exclude_items,
                                             authed))
        if isinstance(out, Exception):
            raise out
        return out

    @app.post("/recommend/batch", response_model=S.BatchRecommendResponse)
    async def recommend_batch(self, req: S.BatchRecommendRequest, authorization: str | None = Header(None)):
        authed = http.read_auth(self.cfg.read_token, authorization)
        http.check_exclude_seen(req.exclude_seen, authed)
        out = await asyncio.gather(*(self._known(KnownRequest(u, req.k, req.exclude_seen, req.diversity, None, authed))
                                     for u in req.user_ids))
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
        authed = http.read_auth(self.cfg.read_token, authorization)
        service = self.service
        codec = self.codecs[service.version]
        user = codec.user(user_id)
        service.user_index(user)
        (state,), _ = await asyncio.to_thread(self._fresh_states, service, codec, [user])
        body = codec.out(service.interests(user, state))
        return body if authed else {**body, "history_size": None, "fresh_events": None}  # sizes: read auth only

    @app.get("/users/{user_id}/similar", response_model=S.SimilarResponse)
    async def similar(self, user_id: Annotated[PathId, Path()], n: int = 10, k: int = 10, authorization: str | None = Header(None)):
        authed = http.read_auth(self.cfg.read_token, authorization)
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
        http.read_auth(self.cfg.read_token, authorization)
        return self.service.clusters()

    @app.get("/clusters/{cid}")
    async def cluster(self, cid: PathInt64, authorization: str | None = Header(None)) -> dict:
        http.read_auth(self.cfg.read_token, authorization)
        service = self.service
        return self.codecs[service.version].out(service.cluster(cid))
