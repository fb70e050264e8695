"""Adapt stage configuration."""

from __future__ import annotations

from dataclasses import dataclass

from interestrec.configcheck import check_config

OBJECTIVES = ("contrastive", "projection", "both")
PAIR_KINDS = ("context", "cooccur")


@dataclass(frozen=True)
class AdaptConfig:
    """Self-supervised domain adaptation of the text encoder on Ray Train (DDP).

    Attributes:
        objective: ``contrastive`` (fine-tune the transformer itself, with LoRA when ``lora_r > 0``),
            ``projection`` (an MLP over *frozen* item vectors, AlphaRec style) or ``both``.
        base_model: model directory or hub id; ``None`` = the packaged all-MiniLM-L6-v2.
        lora_r / lora_alpha / lora_dropout: LoRA on the attention query/value projections
            (``lora_r = 0``: full fine-tune of every weight).
        lora_layers: adapt only the last this many transformer layers (0 = all); gradients then stop
            there, which cuts the backward pass on CPUs.
        pair_kinds: training pairs — ``context`` (the user's last ``context_items`` items, newest first →
            the next item) and ``cooccur`` (an item → the user's next item).
        context_items: items in a ``context`` pair's anchor.
        max_pairs: at most this many pairs per run (a seeded sample, kinds in equal shares).
        lr / epochs / batch_size: the transformer's AdamW learning rate, passes over the pairs, pairs
            per step per worker (in-batch negatives).
        projection_lr / projection_epochs / projection_batch_size / projection_max_pairs: the same for
            the projection MLP (cheap: it sees far more pairs).
        max_tokens: tokens per text (anchors and items are truncated by the tokenizer).
        temperature: InfoNCE temperature.
        hidden: hidden width of the projection MLP.
        num_workers / use_gpu / cpus_per_worker: Ray Train ``ScalingConfig``.
        threads: torch threads per worker on CPU.
        seed: seed of the pair sample, the shuffles and the initialisation.
        max_failures: Ray Train ``FailureConfig``: worker-group restarts (from the last checkpoint).
        storage_path: Ray Train ``RunConfig.storage_path`` (local dir or pyarrow URI, passed unchanged);
            default ``DIR/adapt/ray_train``, refused for several workers on a multi-node cluster when local.
            Every node must reach it.
        encode_batch: texts per forward pass when the stage encodes the catalog.
    """

    objective: str = "projection"
    base_model: str | None = None
    lora_r: int = 8
    lora_alpha: float = 16.0
    lora_dropout: float = 0.0
    lora_layers: int = 0
    pair_kinds: tuple[str, ...] = PAIR_KINDS
    context_items: int = 5
    max_pairs: int = 20000
    lr: float = 5e-4
    projection_lr: float = 1e-3
    projection_epochs: int = 5
    projection_batch_size: int = 1024
    projection_max_pairs: int = 50_000
    epochs: int = 3
    batch_size: int = 256
    max_tokens: int = 128
    temperature: float = 0.05
    hidden: int = 512
    num_workers: int = 1
    use_gpu: bool = False
    cpus_per_worker: float = 1.0
    threads: int = 1
    seed: int = 0
    max_failures: int = 1
    storage_path: str | None = None
    encode_batch: int = 64

    def __post_init__(self) -> None:
        check_config(self, "adapt", ge={"lora_r": 1, "lora_dropout": 0, "max_failures": -1},
                     gt={"lora_alpha": 0, "lr": 0, "projection_lr": 0, "temperature": 0, "cpus_per_worker": 0},
                     le={"lora_dropout": 1})
        if self.objective not in OBJECTIVES:
            raise ValueError(f"adapt.objective must be one of {OBJECTIVES}, got {self.objective!r}")
        bad = sorted(set(self.pair_kinds) - set(PAIR_KINDS))
        if bad or not self.pair_kinds:
            raise ValueError(f"adapt.pair_kinds must be a non-empty subset of {PAIR_KINDS}, got {self.pair_kinds!r}")
        for name in ("context_items", "max_pairs", "epochs", "batch_size", "max_tokens", "hidden", "num_workers",
                     "threads", "encode_batch", "projection_epochs", "projection_max_pairs"):
            if getattr(self, name) < 1:
                raise ValueError(f"adapt.{name} must be >= 1, got {getattr(self, name)!r}")
        for name in ("batch_size", "projection_batch_size"):
            if getattr(self, name) < 2:
                raise ValueError(f"adapt.{name} must be >= 2 (in-batch negatives), got {getattr(self, name)}")
        if self.lora_layers < 0:
            raise ValueError(f"adapt.lora_layers must be >= 0 (0 = all layers), got {self.lora_layers}")
        if self.lora_r < 0:
            raise ValueError(f"adapt.lora_r must be >= 0 (0 = full fine-tune), got {self.lora_r}")
        for name in ("lr", "projection_lr", "temperature", "cpus_per_worker", "lora_alpha"):
            if not getattr(self, name) > 0:
                raise ValueError(f"adapt.{name} must be > 0, got {getattr(self, name)!r}")
        if not 0.0 <= self.lora_dropout < 1.0:
            raise ValueError(f"adapt.lora_dropout must be in [0, 1), got {self.lora_dropout!r}")
        if self.max_failures < -1:
            raise ValueError(f"adapt.max_failures must be >= -1 (-1 = unlimited), got {self.max_failures}")

    @property
    def trains_transformer(self) -> bool:
        """Whether the transformer itself is fine-tuned."""
        return self.objective in ("contrastive", "both")

    @property
    def trains_projection(self) -> bool:
        """Whether a projection over frozen vectors is trained."""
        return self.objective in ("projection", "both")

    def schedule(self, objective: str) -> tuple[int, int, int, float]:
        """``(max_pairs, epochs, batch_size, lr)`` of ``objective`` (``contrastive`` or ``projection``)."""
        if objective == "projection":
            return self.projection_max_pairs, self.projection_epochs, self.projection_batch_size, self.projection_lr
        return self.max_pairs, self.epochs, self.batch_size, self.lr
