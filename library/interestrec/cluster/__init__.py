"""Clustering of user-interest vectors: exact, distributed k-means (Ray actors + gloo all-reduce).

Public API: :func:`kmeans` (single-process reference), :class:`DistributedKMeans`, :func:`assign`,
:func:`streaming_update`, :func:`half_life_to_decay`, :class:`KMeansResult`.
"""

from __future__ import annotations

from interestrec.cluster.assign import assign
from interestrec.cluster.distributed import DistributedKMeans
from interestrec.cluster.lloyd import KMeansResult, kmeans
from interestrec.cluster.streaming import half_life_to_decay, streaming_update

__all__ = ["DistributedKMeans", "KMeansResult", "assign", "half_life_to_decay", "kmeans", "streaming_update"]
