"""interestrec: LLM user-interest vectors, dynamic distributed k-means, GraphSAGE and a Ray Serve recommender.

The package never starts Ray itself: jobs (``jobs/``) call ``ray.init`` and pass plain objects in.
Heavy dependencies (torch, transformers, torch_geometric, ray) are imported lazily inside the
functions that need them, so ``import interestrec`` is cheap.

The public surface (:mod:`interestrec.api`): :func:`run` stages of the pipeline, :func:`load` the published
recommender, :func:`load_config` a validated :class:`PipelineConfig`, :func:`stage_names`.
"""

from __future__ import annotations

from interestrec.lazy import lazy_exports

__version__ = "0.1.0"
__all__ = ["PipelineConfig", "RecommenderService", "__version__", "load", "load_config", "run", "stage_names"]

_LAZY = {"load": "interestrec.api", "load_config": "interestrec.api", "run": "interestrec.api",
         "stage_names": "interestrec.api", "PipelineConfig": "interestrec.config",
         "RecommenderService": "interestrec.recommend.service"}


__getattr__ = lazy_exports(__name__, _LAZY)
