"""Graph stage configuration."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GraphConfig:
    """Knowledge graph + GraphSAGE link prediction trained with Ray Train.

    Attributes:
        conv: ``sage`` or ``gat``.
        sampling: ``full`` (full-graph message passing) or ``neighbor`` (mini-batch temporal sampling).
        adversarial: enable APR (FGSM perturbation of embeddings), with ``eps`` and ``adv_weight``.
        num_workers / use_gpu / cpus_per_worker: Ray Train ScalingConfig.
    """

    conv: str = "sage"
    hidden: int = 64
    out_dim: int = 64
    layers: int = 2
    epochs: int = 15
    lr: float = 0.01
    weight_decay: float = 0.0
    negatives: int = 1
    batch_size: int = 16384
    fanout: tuple[int, ...] = (10, 10)
    sampling: str = "full"
    adversarial: bool = False
    eps: float = 0.5
    adv_weight: float = 1.0
    num_workers: int = 1
    use_gpu: bool = False
    cpus_per_worker: float = 1.0
    storage_path: str | None = None
