"""Request and response models of the HTTP API (pydantic; OpenAPI shows both).

Every client value is bounded here, so bad input is a 422, never a 500: integers within int64, floats
finite, text valid UTF-8 (no lone surrogates), list sizes capped (absolute caps; a deployment's own, lower
ones are in :class:`~interestrec.recommend.config.ServeConfig`). Ranges that depend on the deployment
(timestamps, ``max_k``, ``max_batch_users``, ``max_batch_cost``) are checked by the handlers
(:mod:`interestrec.serving.limits`).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, Field

from interestrec.serving.idtypes import (
    INT64_MAX,
    INT64_MIN,
    ItemId,
    ItemIdField,
    UserId,
    UserIdField,
    utf8_check,
)

MAX_HISTORY, MAX_TEXT, MAX_K, MAX_BATCH_USERS, MAX_KEY = 1000, 2000, 1000, 1000, 200
MAX_ITEMS, MAX_TITLE, MAX_GENRES = 100, 300, 20
EventKind = Literal["view", "click", "rate", "purchase", "tag", "search"]
Diversity = bool | Literal["none", "round_robin", "mmr"]
Text = Annotated[str, AfterValidator(utf8_check("text"))]
Int64 = Annotated[int, Field(ge=INT64_MIN, le=INT64_MAX)]


class HistoryEvent(BaseModel):
    item_id: ItemIdField
    timestamp: Int64 | None = Field(None, description="UTC seconds (0 is 1970-01-01); now when omitted")
    event: EventKind = "view"
    value: float | None = Field(None, allow_inf_nan=False, description="rating for `rate` events (finite)")
    text: Text | None = Field(None, max_length=MAX_TEXT)


class RecommendRequest(BaseModel):
    user_id: UserIdField | None = None
    history: list[HistoryEvent] | None = Field(None, max_length=MAX_HISTORY)
    text: Text | None = Field(None, max_length=MAX_TEXT)
    k: int = Field(10, ge=1, le=MAX_K)
    exclude_seen: bool = True
    exclude_items: list[ItemIdField] = Field(default_factory=list, max_length=MAX_HISTORY)
    diversity: Diversity = False


class BatchRecommendRequest(BaseModel):
    user_ids: list[UserIdField] = Field(..., min_length=1, max_length=MAX_BATCH_USERS)
    k: int = Field(10, ge=1, le=MAX_K)
    exclude_seen: bool = True
    diversity: Diversity = False


class EventsRequest(BaseModel):
    user_id: UserIdField
    events: list[HistoryEvent] = Field(..., min_length=1, max_length=MAX_HISTORY)
    idempotency_key: Text | None = Field(None, min_length=1, max_length=MAX_KEY,
                                         description="client batch id, this field or the Idempotency-Key header "
                                                     "(one is required): a retry with the same key and events "
                                                     "applies once")


class Item(BaseModel):
    item_id: ItemId
    title: str


class Explanation(BaseModel):
    interest: int
    interest_similarity: float
    cluster: int
    cluster_description: str
    nearest_history_item: Item | None = Field(None, description="only for the caller's own user with read auth")


class RecommendedItem(Item):
    rank: int
    score: float
    explanation: Explanation


class RecommendResponse(BaseModel):
    user_id: UserId | None
    cluster: int
    version: str
    items: list[RecommendedItem]
    fresh_events: int | None = Field(0, description="the known user's stored fresh events; null without read auth")
    replica: str = ""


class BatchRecommendResponse(BaseModel):
    results: list[RecommendResponse]


class EventsResponse(BaseModel):
    user_id: UserId
    events: int
    first_seq: int
    duplicate: bool
    idempotency_key: str


class Interest(BaseModel):
    interest: int
    nearest_item: Item | None = Field(description="without read auth: the nearest item the user has not "
                                                  "interacted with (null when there is none)")


class InterestsResponse(BaseModel):
    user_id: UserId
    cluster: int
    interests: list[Interest]
    history_size: int | None = Field(None, description="null without read auth")
    fresh_events: int | None = Field(None, description="null without read auth")


class SimilarUser(BaseModel):
    user_id: UserId
    similarity: float


class SimilarItem(Item):
    users: int


class SimilarResponse(BaseModel):
    user_id: UserId
    cluster: int
    users: list[SimilarUser]
    items: list[SimilarItem]


class ClusterSummary(BaseModel):
    id: int
    size: int
    description: str


class ClustersResponse(BaseModel):
    clusters: list[ClusterSummary]


class VersionResponse(BaseModel):
    version: str
    replica: str


class ItemIn(BaseModel):
    item_id: ItemIdField
    title: Text = Field(..., min_length=1, max_length=MAX_TITLE)
    genres: list[Annotated[Text, Field(min_length=1, max_length=MAX_TITLE)]] = Field(default_factory=list,
                                                                                   max_length=MAX_GENRES)
    description: Text | None = Field(None, max_length=MAX_TEXT)


class ItemsRequest(BaseModel):
    items: list[ItemIn] = Field(..., min_length=1, max_length=MAX_ITEMS)
    idempotency_key: Text | None = Field(None, min_length=1, max_length=MAX_KEY,
                                         description="client batch id, this field or the Idempotency-Key header "
                                                     "(one is required): a retry with the same key and items "
                                                     "applies once")


class ItemsResponse(BaseModel):
    items: int
    first_seq: int
    duplicate: bool
    idempotency_key: str


class ItemOut(BaseModel):
    item_id: ItemId
    title: str
    genres: list[str]
    description: str | None
    live: bool = Field(description="added through POST /items (else the served catalogue's)")


class ErrorResponse(BaseModel):
    detail: str
