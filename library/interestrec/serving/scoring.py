"""What a ``Recommender`` replica does between the HTTP route and the model: translating and scoring a
batch of known-user requests (:class:`KnownRequest`) with one store round trip, fresh state from the
store, timestamps checked against the deployment's range, cold-start text sent to the ``Encoder``.

:class:`ReplicaWork` is a base of :class:`~interestrec.serving.deployments.Recommender`; it expects the
attributes the deployment sets: ``cfg``, ``store``, ``codecs``, ``encoder``, ``replica``, and the live
catalogue's ``_is_live`` (:class:`~interestrec.serving.items.ItemRoutes`).
"""

import asyncio
from typing import NamedTuple

from interestrec.errors import UnknownIdError
from interestrec.recommend.errors import InvalidRequest
from interestrec.serving import http
from interestrec.serving import schemas as S
from interestrec.serving.errors import InvalidId, StoreError, Unavailable
from interestrec.serving.idtypes import IdCodec, ItemId, UserId


class KnownRequest(NamedTuple):
    """One known-user recommendation in a batch (original ids: the batch translates them with the
    version it is scored on). Requests with equal :attr:`group` share one matrix product."""

    user_id: UserId
    k: int
    exclude_seen: bool
    diversity: bool | str
    exclude_items: list[ItemId] | None  # original item ids (catalogue or live) left out of the answer (unknown ignored)
    authed: bool  # read auth: explanations may name history items, ``fresh_events`` is shown

    @property
    def group(self) -> tuple[int, bool, bool | str]:
        """The scoring parameters: ``(k, exclude_seen, diversity)``."""
        return self.k, self.exclude_seen, self.diversity


class ReplicaWork:
    """The replica's plain work (no route, no Serve decorator): see the module docstring."""

    def _check_times(self, events: list[S.HistoryEvent]) -> None:
        """Every given timestamp within ``[min_timestamp, max_timestamp]`` (:class:`InvalidRequest`)."""
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
        return [service.state_from_events(u, codec.event_indices(r, self._is_live)) if r else None
                for u, r in zip(users, rows)], True

    def _known_sync(self, service, reqs: list[KnownRequest]) -> list:
        """Score a batch of known-user requests (original ids, translated here with the batch's version):
        one store round trip, one matrix product per parameter group (the heavy pool's path: all on its thread)."""
        users, out = self._known_users(service, reqs)
        states, _ = self._fresh_states(service, self.codecs[service.version], [u for u, _ in users.values()])
        return self._known_scored(service, reqs, users, dict(zip(users, states)), out)

    async def _known_batch_on_loop(self, service, reqs: list[KnownRequest]) -> list:
        """:meth:`_known_sync` with only the store read on a thread: the scoring runs on the event loop
        (a batch of light requests; no hand-off of the whole batch to a thread and back)."""
        users, out = self._known_users(service, reqs)
        states = [None] * len(users)
        if users:
            states, _ = await asyncio.to_thread(self._fresh_states, service, self.codecs[service.version],
                                                [u for u, _ in users.values()])
        return self._known_scored(service, reqs, users, dict(zip(users, states)), out)

    def _known_users(self, service, reqs: list[KnownRequest]) -> tuple[dict[int, tuple[int, list]], list]:
        """Each valid request's user and excluded items (by position in the batch, ids translated), and the
        answers so far: an unknown or malformed id's error."""
        codec = self.codecs[service.version]
        out: list = [None] * len(reqs)
        users: dict[int, tuple[int, list]] = {}
        for j, r in enumerate(reqs):
            try:
                user = codec.user(r.user_id)
                service.user_index(user)
                users[j] = user, codec.item_refs(r.exclude_items or [], self._is_live, skip_unknown=True)
            except (UnknownIdError, InvalidId) as e:
                out[j] = e
        return users, out

    def _known_scored(self, service, reqs: list[KnownRequest], users: dict[int, tuple[int, list]], state_of: dict,
                      out: list) -> list:
        """The answers of the requests in ``users``, scored with their fresh states (one product per group)."""
        codec = self.codecs[service.version]
        groups: dict[tuple, list[int]] = {}
        for j in users:
            groups.setdefault(reqs[j].group, []).append(j)
        for (k, exclude_seen, diversity), js in groups.items():
            try:
                bodies = service.recommend_many([users[j][0] for j in js], k, exclude_seen, diversity,
                                                [state_of[j] for j in js], [users[j][1] for j in js],
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

    async def _encode(self, text: str):
        """``text`` encoded by the ``Encoder`` deployment (:class:`Unavailable` when it cannot answer)."""
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
