"""Recommender / Serve configuration."""

from __future__ import annotations

from dataclasses import dataclass, fields

from interestrec.configcheck import check_config
from interestrec.encode.config import HALF_LIFE_DAYS, EncodeConfig


@dataclass(frozen=True)
class ServeConfig:
    """Ray Serve app settings (fixed for a deployment; the artifact version travels in ``user_config``).

    Attributes:
        host / port: HTTP bind address (127.0.0.1 unless configured otherwise).
        token: bearer token required by ``POST /events`` (``None`` = open, warned at start-up).
        read_token: bearer token required by the read endpoints (``None`` = open, warned at start-up;
            explanations then leave out the user's own history items).
        store: the fresh-event store, ``sqlite:///abs/path.db`` (one machine) or ``redis://host:port/db``.
        max_fresh_events: newest stored events per user folded into the live state (older ones stay in
            the store's export).
        min_timestamp / max_timestamp: accepted event timestamps (UTC seconds; 0 is valid).
        recommender_replicas / encoder_replicas: replica counts.
        max_ongoing_requests: per recommender replica (Serve's back-pressure bound). Slots are cheap (light
            requests are batched, heavy ones bounded by ``heavy_slots``, slow bodies by ``max_body_readers``), so
            it is set high enough that 200 stalled connections leave light requests room (`docs/bench/serve.md`).
        max_batch_size / batch_wait_timeout_s: known-user scoring batches (``serving.coalesce.Coalescer``:
            requests that arrive while a batch is scored form the next; 0 s scores an idle replica's at once).
        max_tokens: the text encoder's token budget (the encode stage's, so batch and serving agree).
        recommender_cpus: CPUs reserved per recommender replica.
        max_k: the largest ``k`` a request may ask for (``/recommend``, ``/recommend/batch``, ``/similar``).
        open_max_k: without read auth (open reads), how deep into a user's ranking a caller may see:
            ``k + len(exclude_items)`` at most this (≤ ``max_k``), so paging cannot list the complement of
            a user's history; ``/similar`` takes ``k`` at most this.
        open_min_peers: without read auth, ``/similar`` lists only items at least this many of the similar
            users interacted with (no single other user's history).
        max_batch_users / max_batch_cost: ``/recommend/batch`` takes at most this many users, and
            ``users × k`` at most ``max_batch_cost``.
        mmr_candidates: diversification (MMR, round robin) re-ranks at most this many of the best items.
        sim_cache_mb: per replica, MiB of the item-level LLM term's similarity rows kept (an LRU of
            ``n_items × 4``-byte rows; 0 = computed per request).
        heavy_slots: per replica, batch and MMR requests running at once (on their own threads); one more
            is answered 429 with ``Retry-After``, never queued.
        body_timeout_s: a request body not fully received within this many seconds is answered 408.
        max_body_readers: per replica, request bodies being received at once (0 = half of
            ``max_ongoing_requests``); one more is answered 503 with ``Retry-After``, so stalled clients
            never hold every slot.
        items_poll_s: how often a replica reads the live catalogue's version from the store.
    """

    host: str = "127.0.0.1"
    port: int = 8000
    token: str | None = None
    read_token: str | None = None
    store: str = "sqlite:///tmp/interestrec/events.db"
    max_fresh_events: int = 200
    min_timestamp: int = 0
    max_timestamp: int = 4_102_444_800  # 2100-01-01
    recommender_replicas: int = 1
    encoder_replicas: int = 1
    max_ongoing_requests: int = 256
    max_batch_size: int = 16
    batch_wait_timeout_s: float = 0.0
    max_tokens: int = EncodeConfig.max_tokens
    recommender_cpus: float = 0.5
    half_life_days: float = HALF_LIFE_DAYS
    max_k: int = 100
    open_max_k: int = 50
    open_min_peers: int = 3
    max_batch_users: int = 100
    max_batch_cost: int = 2000
    mmr_candidates: int = 200
    heavy_slots: int = 2
    body_timeout_s: float = 5.0
    max_body_readers: int = 0
    items_poll_s: float = 0.5
    sim_cache_mb: float = 256.0

    def __post_init__(self):
        check_config(self, "serve",
                     ge={"port": 0, "encoder_replicas": 1, "max_ongoing_requests": 1, "max_k": 1, "open_max_k": 1,
                         "open_min_peers": 1, "max_batch_users": 1, "max_batch_cost": 1, "mmr_candidates": 1,
                         "heavy_slots": 1, "max_body_readers": 0, "sim_cache_mb": 0},
                     le={"port": 65535, "max_k": 1000, "max_batch_users": 1000, "mmr_candidates": 10_000,
                         "body_timeout_s": 600, "items_poll_s": 60},
                     gt={"recommender_cpus": 0, "half_life_days": 0, "body_timeout_s": 0, "items_poll_s": 0})
        if self.open_max_k > self.max_k:
            raise ValueError(f"serve.open_max_k ({self.open_max_k}) must be <= max_k ({self.max_k})")
        if self.max_body_readers and self.max_body_readers >= self.max_ongoing_requests:
            raise ValueError(f"serve.max_body_readers ({self.max_body_readers}) must be below max_ongoing_requests "
                             f"({self.max_ongoing_requests}), so stalled bodies never hold every slot")
        if not 1 <= self.max_fresh_events <= 100_000:
            raise ValueError(f"serve.max_fresh_events must be in [1, 100000], got {self.max_fresh_events}")
        if not 0 <= self.min_timestamp < self.max_timestamp:
            raise ValueError("serve.min_timestamp must be >= 0 and below max_timestamp")
        if not 1 <= self.max_batch_size <= self.max_ongoing_requests:
            raise ValueError("serve.max_batch_size must be in [1, max_ongoing_requests]")
        if self.batch_wait_timeout_s < 0 or self.recommender_replicas < 1 or self.max_tokens < 8:
            raise ValueError("serve: batch_wait_timeout_s >= 0, recommender_replicas >= 1, max_tokens >= 8")

    @property
    def body_readers(self) -> int:
        """Request bodies a replica receives at once (``max_body_readers``, 0 = half the ongoing bound)."""
        return self.max_body_readers or max(1, self.max_ongoing_requests // 2)

    @classmethod
    def from_args(cls, args: dict) -> ServeConfig:
        """From ``serve run … key=value`` / YAML ``args`` (strings converted to the field types; unknown keys and
        values that are not of the field's type rejected, named)."""
        known = {f.name: f for f in fields(cls)}
        unknown = set(args) - set(known)
        if unknown:
            raise ValueError(f"unknown serve settings {sorted(unknown)}; known: {sorted(known)}")
        out = {}
        for k, v in args.items():
            default = getattr(cls, k)
            if v is None or v == "":
                out[k] = None if default is None else default
            elif isinstance(default, bool):
                out[k] = str(v).lower() in ("1", "true", "yes")
            elif isinstance(default, (int, float)) and not isinstance(v, (int, float)):
                try:
                    out[k] = type(default)(v)
                except (TypeError, ValueError):
                    out[k] = v  # named by the type check: "serve.port must be an int, got 'abc' (str)"
            else:
                out[k] = v
        return cls(**out)
