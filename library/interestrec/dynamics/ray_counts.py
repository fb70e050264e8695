"""Counting the events behind cluster descriptions with one Ray task per events part file.

Each task runs :func:`~interestrec.dynamics.counts.count_file` on one part (reading only ``user_id``,
``item_id`` and ``timestamp``); the driver sums the parts' counts as they arrive, so it never holds
the events, only per-``(cluster, item)`` sums.
"""

from __future__ import annotations

import numpy as np

from interestrec.dynamics.counts import ClusterCounts, count_file, merge_counts


def count_parts(files: list[str], bounds: list[tuple[int, int]], members: list[tuple[np.ndarray, np.ndarray]]) -> list[ClusterCounts]:
    """Per window, the counts summed over every events file.

    Distinct users per cluster are summed over files, which is exact when the files hold disjoint users:
    the ingest's directory datasets are hash-partitioned by user, and a single-file ``events.parquet``
    is one part.

    Args:
        files: the events parquet files (``artifacts.parquet_files``).
        bounds: per window, the ``(start, end)`` of its lookback.
        members: per window, :func:`~interestrec.dynamics.counts.membership` of its users.
    """
    import ray

    members_ref = ray.put(members)
    task = ray.remote(num_cpus=1)(count_file)
    pending = [task.remote(f, bounds, members_ref) for f in files]
    totals = [ClusterCounts.empty() for _ in bounds]
    while pending:
        ready, pending = ray.wait(pending, num_returns=1)
        part = ray.get(ready[0])
        totals = [merge_counts([a, b]) for a, b in zip(totals, part)]
    return totals
