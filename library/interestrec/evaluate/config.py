"""Evaluate stage configuration."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

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
            in the cold-item protocol (0 turns it off; :mod:`interestrec.evaluate.cold_protocol`).
        cold_item_models: rows refit on the withheld data (their validation-tuned params, no grid).
        cold_alpha_grid: the fused row's text-fill strengths (``cold_alpha``) tried on the protocol's
            validation targets; the chosen one joins the fused row's params (and the published table).
        cold_user_max_events: the cold-user slice holds users with at most this many training events.
        grids: row name → the grid tried on validation, replacing the row's own (a profile's smaller grid).
        params: row name → parameters added to every grid point of that row (budgets such as ``epochs``).
        executor: ``ray`` runs every row's grid points as Ray Tune trials and the refits, ablations and test
            ranking as Ray tasks spread over the cluster; ``local`` runs them one after another in the driver
            (the reference; same table).
        workers: trials (and refits) running at once; 0 = the cluster's CPUs ÷ ``cpus_per_trial``. The test
            ranking of each refit model is split into this many user shards.
        cpus_per_trial / gpus_per_trial: resources of each trial, refit and ranking shard.
        early_stop: rows trained in epochs (SASRec, LightGCN) stop grid points early with ASHA on validation
            NDCG@10 (``early_stop_grace`` epochs at least, ``early_stop_reduction`` as its reduction factor).
            Off by default: with trials running side by side ASHA's decisions depend on the order results
            arrive, so the table could differ between worker counts and runs; off, it never does.
    """

    models: tuple[str, ...] = ("mostpop", "itemknn", "ease", "l3ae", "lightgcn", "sasrec", "llm", "llm_frozen",
                               "llm_projection", "graphsage", "graphsage_apr", "fused")
    ks: tuple[int, ...] = (10, 20)
    user_chunk: int = 1024
    tune: bool = True
    ablations: bool = True
    bootstrap_resamples: int = 2000
    bootstrap_seed: int = 0
    cold_item_share: float = 0.2
    cold_item_seed: int = 0
    cold_item_models: tuple[str, ...] = ("llm_frozen", "llm_adapted", "fused", "ease")
    cold_alpha_grid: tuple[float, ...] = (0.0, 1.0, 1.5, 2.0, 3.0, 4.0)
    cold_user_max_events: int = 3
    grids: dict[str, tuple[dict, ...]] = field(default_factory=dict)
    params: dict[str, dict] = field(default_factory=dict)
    executor: str = "ray"
    workers: int = 0
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    early_stop: bool = False
    early_stop_grace: int = 5
    early_stop_reduction: int = 3

    def __post_init__(self) -> None:
        check_config(self, "evaluate", ge={"ks": 1, "user_chunk": 1, "cold_user_max_events": 0, "cold_alpha_grid": 0,
                                           "workers": 0, "gpus_per_trial": 0, "early_stop_grace": 1,
                                           "early_stop_reduction": 2}, gt={"cpus_per_trial": 0},
                     choices={"executor": ("ray", "local")})
        if not self.models or not self.ks or not self.cold_alpha_grid:
            raise ValueError("evaluate.models, evaluate.ks and evaluate.cold_alpha_grid must not be empty")
        for attr in ("grids", "params"):
            if not isinstance(getattr(self, attr), Mapping):
                raise ValueError(f"evaluate.{attr} must map row names to settings, got {getattr(self, attr)!r}")
        for name, grid in self.grids.items():
            if isinstance(grid, Mapping) or not grid or not all(isinstance(p, Mapping) for p in grid):
                raise ValueError(f"evaluate.grids.{name} must be a non-empty list of parameter mappings, got {grid!r}")
        for name, extra in self.params.items():
            if not isinstance(extra, Mapping):
                raise ValueError(f"evaluate.params.{name} must be a mapping of parameters, got {extra!r}")
        # YAML lists become tuples (the rows compare and hash their params)
        object.__setattr__(self, "grids", {n: tuple(_frozen(dict(p)) for p in g) for n, g in self.grids.items()})
        object.__setattr__(self, "params", {n: _frozen(dict(p)) for n, p in self.params.items()})
        if not 0.0 <= self.cold_item_share < 1.0:
            raise ValueError(f"evaluate.cold_item_share must be in [0, 1), got {self.cold_item_share}")
        if self.bootstrap_resamples < 100:
            raise ValueError(f"evaluate.bootstrap_resamples must be ≥ 100, got {self.bootstrap_resamples}")

    def row_grid(self, name: str, default: list[dict]) -> list[dict]:
        """The grid of row ``name``: ``grids[name]`` (else ``default``, the row's own), each point plus ``params[name]``."""
        extra = self.params.get(name, {})
        return [{**p, **extra} for p in (self.grids.get(name) or default)]


def _frozen(params: dict) -> dict:
    """``params`` with list values as tuples."""
    return {k: tuple(v) if isinstance(v, list) else v for k, v in params.items()}
