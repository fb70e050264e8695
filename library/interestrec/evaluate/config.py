"""Evaluate stage configuration."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EvaluateConfig:
    """Full-ranking leave-last-out evaluation of every registered model.

    Attributes:
        models: registry names to evaluate (baselines and ours).
        ks: cut-offs reported.
        user_chunk: users scored per chunk (the users x items matrix is never materialised whole).
    """

    models: tuple[str, ...] = ("mostpop", "itemknn", "ease", "lightgcn", "sasrec", "llm", "graphsage", "graphsage_apr", "fused")
    ks: tuple[int, ...] = (10, 20)
    user_chunk: int = 1024
    tune: bool = True
