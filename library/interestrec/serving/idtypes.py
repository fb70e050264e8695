"""The one place the serving API's user and item ids are defined and translated.

Clients speak the dataset's original ids: an int64 (MovieLens, the synthetic generator: identity-mapped)
or a string (``"AE3V…"``, ``"B07X…"``: dense-mapped). :class:`IdCodec` translates them once at the HTTP
edge, through the ingest's :class:`~interestrec.ids.IdMap` pair, into the int64 indices the model uses,
and every id in a response back into the original. An id of the wrong kind for the dataset (a string
for an integer-id dataset that is not a number) is unknown: ``404`` with the id named.

The fresh-event store keys events by the **original** ids (stable across artifact versions, while a
dense index can shift when a new version sees new ids); :meth:`IdCodec.event_indices` maps stored events
into the serving version's index space on read.

A live-catalogue item (``POST /items``: an id this version's catalogue does not have) is an item like any
other in requests: :meth:`IdCodec.item_refs` and :meth:`IdCodec.event_indices` give it as a
:class:`~interestrec.recommend.live.LiveId` (its original id in the dataset's kind) where the caller says it
is live; when a version's catalogue has the id, the catalogue's item is meant.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Annotated

import numpy as np
from pydantic import AfterValidator, Field, StrictInt, StrictStr

from interestrec.ids import IdMap, UnknownIdError
from interestrec.recommend.live import LiveId
from interestrec.serving.errors import InvalidId, UnknownId

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
MAX_ID_CHARS = 256
MISSING = INT64_MIN  # the index of an id this version does not know (never a real index)

UserId = int | str
ItemId = int | str


def utf8_check(what: str):
    """A pydantic validator: the string is valid UTF-8 (no lone surrogates), else ``ValueError`` naming ``what``."""

    def check(v: str) -> str:
        try:
            v.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError(f"{what} must be valid UTF-8 (no lone surrogates)") from None
        return v

    return check


_Int = Annotated[StrictInt, Field(ge=INT64_MIN, le=INT64_MAX)]
_Str = Annotated[StrictStr, Field(min_length=1, max_length=MAX_ID_CHARS), AfterValidator(utf8_check("ids"))]
UserIdField = Annotated[_Int | _Str, Field(description="user id as in the data: an int64 or a string")]
ItemIdField = Annotated[_Int | _Str, Field(description="item id as in the data: an int64 or a string")]
PathId = Annotated[str, Field(min_length=1, max_length=MAX_ID_CHARS)]


@dataclasses.dataclass(frozen=True)
class IdCodec:
    """Original ids ↔ model indices for one artifact version.

    Args:
        users: the ingest's user :class:`IdMap`.
        items: the ingest's item :class:`IdMap`.
    """

    users: IdMap
    items: IdMap

    # ----------------------------------------------------------------- in
    def user(self, original: UserId) -> int:
        """The index of one original user id; :class:`UnknownId` when unknown or of the wrong kind."""
        return int(self._in(self.users, [original], "user")[0])

    def item_list(self, originals: list[ItemId], skip_unknown: bool = False) -> list[int]:
        """Indices of original item ids; unknown ones raise :class:`UnknownId` (or are dropped with ``skip_unknown``)."""
        if not originals:
            return []
        if skip_unknown:
            return [int(i) for i in self._to_index(self.items, originals, missing=MISSING) if i != MISSING]
        return [int(i) for i in self._in(self.items, originals, "item")]

    def item_refs(self, originals: list[ItemId], is_live: Callable[[ItemId], bool],
                  skip_unknown: bool = False) -> list[int | LiveId]:
        """Original item ids as this version's indices, or as a :class:`LiveId` (the id in the dataset's kind,
        :meth:`live_id`) where the catalogue lacks it and ``is_live`` says so; any other id raises
        :class:`UnknownId` naming it (:class:`InvalidId` when of the wrong kind), or is dropped with ``skip_unknown``."""
        if not originals:
            return []
        out: list[int | LiveId] = []
        for o, i in zip(originals, self._to_index(self.items, originals, missing=MISSING)):
            if i != MISSING:
                out.append(int(i))
                continue
            try:
                live = self.live_id(o)
            except InvalidId:
                if skip_unknown:
                    continue
                raise
            if is_live(live):
                out.append(LiveId(live))
            elif not skip_unknown:
                raise UnknownId(f"unknown item {o}")
        return out

    def event_indices(self, events: list, is_live: Callable[[ItemId], bool] | None = None) -> list:
        """Stored events (original ids) with ``item_id`` as this version's index: a :class:`LiveId` for an id
        the catalogue lacks that ``is_live`` says is live, else :data:`MISSING` when unknown."""
        if not events:
            return events
        idx = self._to_index(self.items, [e.item_id for e in events], missing=MISSING)
        return [dataclasses.replace(e, item_id=LiveId(e.item_id) if i == MISSING and is_live is not None
                                    and is_live(e.item_id) else int(i)) for e, i in zip(events, idx)]

    def prepared(self) -> IdCodec:
        """This codec with its lookup tables built (call at load time, not on a request)."""
        _ = self._dense_pos
        return self

    @functools.cached_property
    def _dense_pos(self) -> dict[int, dict[str, int]]:
        """Per dense map (by ``id``): original id → index, built once (``IdMap.to_index`` hashes per call)."""
        return {id(m): {str(v): i for i, v in enumerate(m.ids)} for m in (self.users, self.items) if m.kind == "dense"}

    def _to_index(self, idmap: IdMap, originals: list, missing: int | None = None) -> np.ndarray:
        if idmap.kind != "dense":
            return idmap.to_index(originals, missing=missing)
        pos = self._dense_pos[id(idmap)]
        out = np.array([pos.get(str(v), MISSING) for v in originals], np.int64)
        if missing is None and (out == MISSING).any():
            raise UnknownIdError("unknown id(s)")
        return out if missing is None or missing == MISSING else np.where(out == MISSING, missing, out)

    def _in(self, idmap: IdMap, originals: list, what: str):
        try:
            return self._to_index(idmap, originals)
        except UnknownIdError:
            bad = self._to_index(idmap, originals, missing=MISSING)
            first = next(o for o, i in zip(originals, bad) if i == MISSING)
            if idmap.kind == "identity" and _as_int64(first) is None:
                raise InvalidId(f"{what}_id {first!r}: this dataset's {what} ids are int64 numbers") from None
            raise UnknownId(f"unknown {what} {first}") from None

    # ----------------------------------------------------------------- out
    def out(self, body):
        """``body`` with every ``item_id`` / ``user_id`` (model indices) replaced by the original id.

        ``None`` stays ``None``; lists and nested dicts are walked.
        """
        if isinstance(body, list):
            return [self.out(b) for b in body]
        if not isinstance(body, dict):
            return body
        res = {}
        for k, v in body.items():
            if k == "item_id" and isinstance(v, LiveId):  # a live-catalogue item: its id is the original
                res[k] = v.original
            elif k == "item_id" and v is not None:
                res[k] = self.items.to_original([v])[0]
            elif k == "user_id" and v is not None:
                res[k] = self.users.to_original([v])[0]
            else:
                res[k] = self.out(v)
        return res

    def store_key(self, user: int) -> UserId:
        """The store's key of a user index: the user's original id."""
        return self.users.to_original([user])[0]

    def live_id(self, original: ItemId) -> ItemId:
        """A live-catalogue item's id in this dataset's kind: an int64 for integer-id data (a numeric string
        is converted; any other is :class:`InvalidId`), a string for string-id data."""
        if self.items.kind != "identity":
            return str(original)
        value = _as_int64(original)
        if value is None or isinstance(original, float):
            raise InvalidId(f"item_id {original!r}: this dataset's item ids are int64 numbers")
        return value

    def known_item(self, original: ItemId) -> bool:
        """Whether this version's catalogue has the item."""
        return bool(self.item_list([original], skip_unknown=True))

    def original_items(self, items: list[int | LiveId]) -> list[ItemId]:
        """Original ids of item indices and :class:`LiveId` s (for events written to the store)."""
        catalogue = iter(self.items.to_original([i for i in items if not isinstance(i, LiveId)]))
        return [i.original if isinstance(i, LiveId) else next(catalogue) for i in items]


def _as_int64(v) -> int | None:
    try:
        i = int(v) if not isinstance(v, bool) else None
    except (TypeError, ValueError):
        return None
    return i if i is not None and INT64_MIN <= i <= INT64_MAX else None
