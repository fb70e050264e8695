"""interestrec: LLM user-interest vectors, dynamic distributed k-means, GraphSAGE and a Ray Serve recommender.

The package never starts Ray itself: jobs (``jobs/``) call ``ray.init`` and pass plain objects in.
Heavy dependencies (torch, transformers, torch_geometric, ray) are imported lazily inside the
functions that need them, so ``import interestrec`` is cheap.
"""

__version__ = "0.1.0"
