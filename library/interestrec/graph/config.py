"""Graph stage configuration."""

from __future__ import annotations

from dataclasses import dataclass

from interestrec.configcheck import check_config


@dataclass(frozen=True)
class GraphConfig:
    """Knowledge graph + GraphSAGE link prediction trained with Ray Train.

    Attributes:
        conv: ``sage`` (``SAGEConv``, mean aggregation) or ``gat`` (``GATConv``, no self loops).
        hidden: embedding size of every node type and layer (layer outputs are averaged, so they share it).
        layers: message-passing layers.
        activation: ``none`` (linear propagation, as in LightGCN) or ``relu`` between layers.
        layer_combine: final embedding = mean of the input and every layer's output (else the last layer).
        use_features: project LLM item/user vectors into the input embedding (when the encode stage ran).
        no_id: node types whose input is their projected features only, no ID embedding (when they
            have features; inductive like the original GraphSAGE, and less prone to memorise).
        user_tags / max_tags: add user→tag edges; keep at most ``max_tags`` tags per item.
        recent: add a ``user –recent→ item`` relation over each user's last ``recent`` interactions
            (its own weights, so the model can weigh the current taste; 0 = none).
        epochs / lr / weight_decay / batch_size: optimisation (Adam; batch = supervision edges per step).
        negatives: uniformly sampled negative items per supervision edge (BPR averages over them).
        recency_half_life: supervise a user's later interactions more: an edge ``k`` steps before the
            user's last is drawn with weight ``0.5^(k / half_life)`` (0 = every edge once per epoch).
        reg: L2 penalty on the batch's input embeddings (as in BPR-MF / LightGCN).
        sampling: ``full`` (full-graph message passing, the batch's own edges dropped from the graph)
            or ``neighbor`` (mini-batch temporal neighbour sampling with ``fanout`` per layer).
        adversarial: APR (FGSM perturbation of the final user/item embeddings); ``eps`` is relative
            to the batch's mean embedding norm, ``adv_weight`` is λ in ``BPR + λ·BPR(perturbed)``.
        robustness_eps: size (relative, as ``eps``) of the random test-time perturbation in the summary.
        companion: the stage also trains the other APR setting in-process, for the robustness comparison.
        num_workers / use_gpu / cpus_per_worker: Ray Train ``ScalingConfig``.
        threads: torch threads per process (1 is fastest on small shared machines).
        storage_path: Ray Train ``RunConfig.storage_path``, passed unchanged (local dir or pyarrow URI such as
            ``s3://bucket/runs``); default ``<out>/graph/ray_train``, shared on a cluster when the pipeline output
            is on object storage. Every node must reach it.
        max_failures: Ray Train ``FailureConfig.max_failures``: worker-group restarts (from the latest
            checkpoint) after a worker dies or raises, before the stage fails.
    """

    conv: str = "sage"
    hidden: int = 64
    layers: int = 2
    activation: str = "none"
    layer_combine: bool = True
    use_features: bool = True
    no_id: tuple[str, ...] = ()
    user_tags: bool = True
    max_tags: int = 5
    recent: int = 20
    epochs: int = 5
    lr: float = 0.005
    weight_decay: float = 0.0
    reg: float = 1e-4
    recency_half_life: float = 0.0
    negatives: int = 32
    batch_size: int = 8192
    fanout: tuple[int, ...] = (10, 10)
    sampling: str = "full"
    adversarial: bool = False
    eps: float = 0.1
    adv_weight: float = 1.0
    robustness_eps: float = 0.1
    companion: bool = True
    num_workers: int = 1
    use_gpu: bool = False
    cpus_per_worker: float = 1.0
    threads: int = 1
    storage_path: str | None = None
    max_failures: int = 2

    def __post_init__(self) -> None:
        check_config(self, "graph", ge={"hidden": 1, "max_tags": 0, "recent": 0, "weight_decay": 0, "reg": 0,
                                        "recency_half_life": 0, "fanout": 1, "eps": 0, "adv_weight": 0,
                                        "robustness_eps": 0, "threads": 1},
                     gt={"lr": 0}, choices={"no_id": ("user", "item")})
        if self.conv not in ("sage", "gat"):
            raise ValueError(f"graph.conv must be 'sage' or 'gat', got {self.conv!r}")
        if self.sampling not in ("full", "neighbor"):
            raise ValueError(f"graph.sampling must be 'full' or 'neighbor', got {self.sampling!r}")
        if self.activation not in ("none", "relu"):
            raise ValueError(f"graph.activation must be 'none' or 'relu', got {self.activation!r}")
        if self.layers < 1 or self.epochs < 1 or self.negatives < 1 or self.batch_size < 1:
            raise ValueError("graph.layers, epochs, negatives and batch_size must be >= 1")
        if self.sampling == "neighbor" and len(self.fanout) != self.layers:
            raise ValueError(f"graph.fanout needs one entry per layer ({self.layers}), got {self.fanout}")
        if self.max_failures < -1:
            raise ValueError(f"graph.max_failures must be >= -1 (-1 = unlimited), got {self.max_failures}")
        if self.num_workers < 1 or self.cpus_per_worker <= 0:
            raise ValueError("graph.num_workers must be >= 1 and graph.cpus_per_worker > 0")
