"""The live catalogue on a ``Recommender`` replica: ``POST /items`` (write token; idempotent like ``POST
/events``), ``GET /items/{item_id}``, and the replica's copy of the store's items.

An item's text (title, genres and the first ``encode.item_description_words`` words of its description,
that setting as the served version was encoded with: :func:`interestrec.encode.text.item_text`, as the
encode stage writes a catalogue row, so the next run encodes it to the same vector) is encoded by the
``Encoder`` deployment, and the item with its vector is stored durably in the event store before the answer.
Every replica reads what changed since its last look (:meth:`~interestrec.serving.store.EventStore.items_since`)
every ``serve.items_poll_s`` seconds, in a background task the replica's first request starts (no request
waits for a poll after that), and serves the items beside the catalogue, scored as cold items
(:mod:`interestrec.recommend.live`). An item the served version's catalogue already has is refused (its
text changes with the next pipeline run; the store's export of items feeds it).

A live item is usable wherever a catalogue item is (:meth:`ItemRoutes._item_refs`): ``POST /events`` on it,
a cold ``history`` naming it, ``exclude_items``. An id neither the catalogue nor the replica's copy has
makes the replica read the store's new items once before it is called unknown, so an item another replica
took a moment ago is usable on every replica at once. Once a published version's catalogue has the id, its
catalogue item is the one meant everywhere (the live copy is no longer served).
"""

import asyncio
import logging

from interestrec.recommend.errors import InvalidRequest
from interestrec.serving import http
from interestrec.serving import schemas as S
from interestrec.serving.errors import StoreError, UnknownId

log = logging.getLogger("ray.serve")


class ItemRoutes:
    """A base of the ``Recommender`` deployment (it sets ``cfg``, ``store``, ``service``, ``codecs``, ``encoder``;
    its routes call :meth:`_put_items` and :meth:`_get_item`)."""

    _live: dict | None = None  # id key -> StoredItem, the replica's copy of the store's live catalogue
    _live_seq = 0
    _poller: asyncio.Task | None = None

    def _set_live(self, service) -> None:
        """Give ``service`` the live items its catalogue does not have (one assignment)."""
        import numpy as np

        from interestrec.recommend.live import LiveItems

        codec = self.codecs[service.version]
        rows = [r for r in (self._live or {}).values() if not codec.known_item(r.item_id)]
        service.set_live(LiveItems(tuple(r.item_id for r in rows), tuple(r.title for r in rows),
                                   np.asarray([r.vector for r in rows], np.float32).reshape(len(rows), service.dim)))

    async def _live_items(self) -> None:
        """Before a request is scored: the first one starts the background poll and waits for its first read;
        later ones wait for nothing."""
        if self._poller is None:
            self._poller = asyncio.create_task(self._poll_items())
            await self._refresh_items()

    async def _poll_items(self) -> None:
        """Read the store's new items every ``items_poll_s`` for the replica's lifetime."""
        while True:
            await asyncio.sleep(self.cfg.items_poll_s)
            try:
                await self._refresh_items()
            except Exception:  # a bad row must not end the poll for good: logged, tried again next time
                log.exception("interestrec: reading the live catalogue failed; retrying in %.1f s", self.cfg.items_poll_s)

    async def _refresh_items(self, strict: bool = False) -> None:
        """Read the items written since the last look; the store down: the copy stays as it was (``strict``:
        :class:`StoreError` instead, for a write that needs to know)."""
        from interestrec.serving.store import id_key

        try:
            rows = await asyncio.to_thread(self.store.items_since, self._live_seq)
        except StoreError:
            if strict:
                raise
            http.metrics()["fallbacks"].inc()
            return
        if rows:
            self._live = {**(self._live or {}), **{id_key(r.item_id): r for r in rows}}
            self._live_seq = max(self._live_seq, max(r.seq for r in rows))
            self._set_live(self.service)

    def _is_live(self, original) -> bool:
        """Whether the replica's copy of the live catalogue has the item (an original id in the dataset's kind)."""
        from interestrec.serving.store import id_key

        return id_key(original) in (self._live or {})

    async def _item_refs(self, codec, originals: list, strict: bool = False) -> list:
        """Original item ids as catalogue indices or :class:`~interestrec.recommend.live.LiveId` s
        (:meth:`IdCodec.item_refs`); an id neither has is looked for in the store's new items once before it
        is :class:`UnknownId` (``strict``: the store down is :class:`StoreError`, not unknown)."""
        try:
            return codec.item_refs(originals, self._is_live)
        except UnknownId:
            await self._refresh_items(strict)  # written on another replica since this one's last look?
        return codec.item_refs(originals, self._is_live)

    async def _put_items(self, req: S.ItemsRequest, authorization: str | None, idempotency_key: str | None) -> dict:
        """``POST /items``: check, encode, store durably, then serve them on this replica at once."""
        from interestrec.encode.text import item_text

        http.write_auth(self.cfg.token, authorization)
        key = http.batch_key(req.idempotency_key, idempotency_key)
        codec = self.codecs[self.service.version]
        ids = [codec.live_id(i.item_id) for i in req.items]
        if len(set(map(str, ids))) < len(ids):
            raise InvalidRequest("an item_id appears twice in one batch")
        known = [i for i in ids if codec.known_item(i)]
        if known:
            raise InvalidRequest(f"item {known[0]!r} is in the served catalogue: its text changes with the next "
                                 "pipeline run")
        words = self.service.arts.description_words  # the item texts as the encode stage wrote the catalogue's
        texts = [item_text(i.title, genres=i.genres, description=i.description, description_words=words)
                 for i in req.items]
        vecs = await asyncio.gather(*(self._encode(t) for t in texts))
        items = [{"item_id": o, "title": i.title, "genres": list(i.genres), "description": i.description,
                  "vector": v.tolist()} for o, i, v in zip(ids, req.items, vecs)]
        ack = await http.durable_write("POST /items", key, self.store.put_items, items)  # durable before the answer
        await self._refresh_items()  # this replica serves them at once, the others within items_poll_s
        return {"items": ack.n, "first_seq": ack.first_seq, "duplicate": ack.duplicate, "idempotency_key": key}

    async def _get_item(self, item_id: str, authorization: str | None) -> dict:
        """``GET /items/{item_id}``: a live item from the store (so any replica, at once), else the catalogue's."""
        http.read_auth(self.cfg.read_token, authorization)
        service = self.service
        codec = self.codecs[service.version]
        if codec.known_item(item_id):
            (i,) = codec.item_list([item_id])
            return {"item_id": codec.original_items([i])[0], "title": service.titles.get(i, ""),
                    "genres": list(service.arts.genres.get(i, [])), "description": None, "live": False}
        original = codec.live_id(item_id)
        row = await asyncio.to_thread(self.store.item, original)
        if row is None:
            raise UnknownId(f"unknown item {item_id}")
        return {"item_id": row.item_id, "title": row.title, "genres": list(row.genres), "description": row.description,
                "live": True}
