"""Evaluate stage configuration."""

from __future__ import annotations

from dataclasses import dataclass

from interestrec.configcheck import check_config


@dataclass(frozen=True)
class EvaluateConfig:
    """Full-ranking leave-last-out evaluation of every registered model.

    Attributes:
        models: registry names to evaluate (baselines and ours).
        ks: cut-offs reported.
        user_chunk: users scored per chunk (the users x items matrix is never materialised whole).
        tune: grid search on validation (else every row's first grid point).
        ablations: add the fused row's ablations (``fused-no_llm`` ...), refit at its tuned params.
        bootstrap_resamples / bootstrap_seed: paired bootstrap over users for the intervals.
        cold_item_share / cold_item_seed: share of items whose every training interaction is withheld
            in the cold-item protocol (0 turns it off).
        cold_item_models: rows refit on the withheld data (their validation-tuned params, no grid).
        cold_user_max_events: the cold-user slice holds users with at most this many training events.
    """

    models: tuple[str, ...] = ("mostpop", "itemknn", "ease", "l3ae", "lightgcn", "sasrec", "llm", "llm_frozen",
                               "llm_projection", "graphsage", "graphsage_apr", "fused")
    ks: tuple[int, ...] = (10, 20)
    user_chunk: int = 1024
    tune: bool = True
    ablations: bool = True
    bootstrap_resamples: int = 2000
    bootstrap_seed: int = 0
    cold_item_share: float = 0.15
    cold_item_seed: int = 0
    cold_item_models: tuple[str, ...] = ("llm_frozen", "llm_adapted", "fused", "ease")
    cold_user_max_events: int = 3

    def __post_init__(self) -> None:
        check_config(self, "evaluate", ge={"ks": 1, "user_chunk": 1, "cold_user_max_events": 0})
        if not self.models or not self.ks:
            raise ValueError("evaluate.models and evaluate.ks must not be empty")
        if not 0.0 <= self.cold_item_share < 1.0:
            raise ValueError(f"evaluate.cold_item_share must be in [0, 1), got {self.cold_item_share}")
        if self.bootstrap_resamples < 100:
            raise ValueError(f"evaluate.bootstrap_resamples must be ≥ 100, got {self.bootstrap_resamples}")
