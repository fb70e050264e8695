"""Encode stage configuration."""

from __future__ import annotations

from dataclasses import dataclass

from interestrec.configcheck import check_config

HALF_LIFE_DAYS = 180.0  # the default recency half-life of pooled user vectors, wherever a history is decayed


@dataclass(frozen=True)
class EncodeConfig:
    """LLM encoding of items and user histories.

    Attributes:
        model: local model directory or hub id; ``None`` = the packaged all-MiniLM-L6-v2 weights.
        user_mode: ``pool`` (recency-decayed mean of item vectors) or ``text`` (encode history text).
        also_text: also encode the other mode's train-history texts (for throughput and comparison).
        max_tokens: token budget of a user-history text (oldest events dropped first).
        lookback_days: per-window user vectors use events in this many days before the window's end.
        half_life_days: recency half-life of pooled user vectors and interest importance.
        max_interests: at most this many interests per user (multi-interest, PinnerSage style).
        interest_distance: Ward merge distance above which a user's item groups stay separate interests.
        num_actors / num_cpus / num_gpus / batch_size: Ray Data encoder pool settings (``num_cpus``
            rounded up is also the torch thread count of each CPU replica: 1.75 on a 2-CPU node leaves
            the tokeniser its 0.25 and runs 2 threads).
        sub_batch: texts per forward pass inside a batch (sorted by length to cut padding).
        cuda_sub_batch / cuda_sub_tokens: on CUDA a forward pass takes up to this many texts and padded
            tokens instead (a GPU is launch-bound on small passes: on an H200 all-MiniLM-L6-v2 ran
            205k tokens/s at 64 texts a pass and 723k at 1024); a GPU pool's Ray batches are at least
            four such passes.
        tokenize_cpus: CPUs reserved by the tokeniser actor (its own stage, overlapping inference).
        device: ``auto`` (CUDA when present), ``cpu`` or ``cuda``.
        whiten: item-vector geometry fitted on each phase's catalogue (``encode.geometry``): ``none``,
            ``center``, ``whiten`` or ``remove_pcs``.
        whiten_pcs: principal directions removed by ``remove_pcs``.
        max_tags: event-derived tags per item text (``encode.phases``).
        item_description_words: words of a catalogue item's description (Amazon metadata, an ``items``
            file's ``description`` column, a live item's) appended to its text; ``0`` leaves descriptions out.
            ``POST /items`` encodes live items with the published value, so their vectors match the next run's.
        reuse_adapt_vectors: item texts the adapt stage already encoded with the same base model (its
            ``items.parquet``: every item without tags has the same text) are not encoded again.
        review_weight: share ``w`` of the reviews in an item vector, ``normalize((1 - w)·catalogue +
            w·mean(reviews))`` over the reviews of the phase's training events (``encode.reviews``);
            ``0`` leaves review texts out (they are then neither read nor encoded).
        max_reviews_per_item: an item's newest reviews (within the phase's splits) that are pooled.
        review_max_tokens: tokens per review text (longer reviews are truncated when encoded).
        review_sub_tokens: padded tokens of a CPU forward pass over review texts (at most ``sub_batch``
            texts, so long texts go a few at a time: in a bare loop on 2 CPU threads 128-token reviews
            read ~20 % more tokens/s in passes of 1–4k tokens than in passes of 64 texts). CUDA passes
            use ``cuda_sub_batch`` / ``cuda_sub_tokens``.
        review_history_words: words of a user's own review shown in a text-mode history entry (``0`` =
            entries leave reviews out).
    """

    model: str | None = None
    user_mode: str = "pool"
    also_text: bool = True
    max_tokens: int = 256
    lookback_days: float = 730.0
    half_life_days: float = HALF_LIFE_DAYS
    max_interests: int = 4
    interest_distance: float = 1.5
    num_actors: int = 1
    num_cpus: float = 1.0
    num_gpus: float = 0.0
    batch_size: int = 256
    sub_batch: int = 64
    cuda_sub_batch: int = 1024
    cuda_sub_tokens: int = 65536
    tokenize_cpus: float = 0.25
    device: str = "auto"
    whiten: str = "none"
    whiten_pcs: int = 2
    max_tags: int = 5
    item_description_words: int = 0
    reuse_adapt_vectors: bool = False
    review_weight: float = 0.5
    max_reviews_per_item: int = 32
    review_max_tokens: int = 128
    review_sub_tokens: int = 2048
    review_history_words: int = 32

    def __post_init__(self) -> None:
        from interestrec.encode.geometry import MODES

        check_config(self, "encode", ge={"max_tokens": 8, "max_interests": 1, "num_actors": 1, "num_gpus": 0,
                                         "batch_size": 1, "sub_batch": 1, "cuda_sub_batch": 1,
                                         "cuda_sub_tokens": 8, "tokenize_cpus": 0, "review_weight": 0,
                                         "max_reviews_per_item": 1, "review_max_tokens": 8, "review_history_words": 0,
                                         "review_sub_tokens": 8, "item_description_words": 0},
                     le={"review_weight": 1},
                     gt={"lookback_days": 0, "half_life_days": 0, "interest_distance": 0, "num_cpus": 0},
                     choices={"user_mode": ("pool", "text"), "device": ("auto", "cpu", "cuda")})
        if self.whiten not in MODES:
            raise ValueError(f"encode.whiten must be one of {MODES}, got {self.whiten!r}")
        if not isinstance(self.whiten_pcs, int) or self.whiten_pcs < 1:
            raise ValueError(f"encode.whiten_pcs must be an integer ≥ 1, got {self.whiten_pcs!r}")
        if not isinstance(self.max_tags, int) or self.max_tags < 0:
            raise ValueError(f"encode.max_tags must be an integer ≥ 0, got {self.max_tags!r}")
