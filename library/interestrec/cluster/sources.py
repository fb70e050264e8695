"""Vectors for the k-means actors straight from parquet files: one read task per file, filtered at the source.

``DistributedKMeans.fit`` takes a list of object refs to Arrow tables and gives each actor a contiguous
run of them. :func:`file_blocks` reads every file in its own Ray task (only the asked columns, only the
row groups and rows the filter keeps) and cuts it into one slice per actor, returned shard-major, so
every actor gets a slice of every file and the driver never holds a vector. :func:`sample_rows` draws a
seeded sample the same way (K selection and quality metrics need a few thousand rows in the driver).
Paths are local files or URIs (``artifacts.parquet_files`` lists a directory dataset's parts).
"""

from __future__ import annotations

import numpy as np


def read_rows(path: str, columns: list[str], filters=None):
    """One parquet file's ``columns`` of the rows matching ``filters`` (a pyarrow DNF list)."""
    import pyarrow.parquet as pq

    return pq.read_table(path, columns=columns, filters=filters)  # the filesystem is inferred from a URI


def read_slices(path: str, columns: list[str], filters, slices: int) -> list:
    """:func:`read_rows` cut into ``slices`` nearly equal tables (copies: a slice would pickle its whole buffer)."""
    import pyarrow as pa

    t = read_rows(path, columns, filters)
    sizes = t.num_rows // slices + (np.arange(slices) < t.num_rows % slices)  # as np.array_split cuts
    cuts = np.concatenate([[0], np.cumsum(sizes)])
    return [t.take(pa.array(np.arange(a, b))) for a, b in zip(cuts[:-1], cuts[1:])]


def _read_one(path: str, columns: list[str], filters, slices: int = 1):
    return read_slices(path, columns, filters, 1)[0]


def file_blocks(files: list[str], columns: list[str], filters, num_actors: int, num_cpus: float = 1.0) -> list:
    """Object refs to the rows of ``files``, one read task per file, in shard-major order (actor ``a`` of
    ``DistributedKMeans`` gets the ``a``-th slice of every file); returns once every block is in the
    object store."""
    import ray

    if num_actors > 1:
        task = ray.remote(read_slices).options(num_cpus=num_cpus, num_returns=num_actors)
    else:  # num_returns=1 would store the one-table list itself
        task = ray.remote(_read_one).options(num_cpus=num_cpus)
    per_file = [task.remote(f, columns, filters, num_actors) for f in files]
    per_file = [r if isinstance(r, list) else [r] for r in per_file]
    refs = [refs[a] for a in range(num_actors) for refs in per_file]
    # Every read finishes before this returns: actors started next may take every CPU, and a read still
    # queued then would never run (their load would wait for it until its deadline).
    ray.wait(refs, num_returns=len(refs), fetch_local=False)  # done, not fetched: the driver holds no vector
    return refs


def _sample_file(path: str, columns: list[str], filters, fraction: float, seed: int):
    t = read_rows(path, columns, filters)
    keep = np.random.default_rng(seed).random(t.num_rows) < fraction
    return t.filter(keep)


def sample_rows(files: list[str], columns: list[str], filters, fraction: float, seed: int, num_cpus: float = 1.0):
    """A seeded Bernoulli sample (each row kept with probability ``fraction``) of the rows of ``files``,
    drawn in one task per file; the same files, filter and seed give the same rows."""
    import pyarrow as pa
    import ray

    task = ray.remote(_sample_file).options(num_cpus=num_cpus)
    tables = ray.get([task.remote(f, columns, filters, fraction, seed + i) for i, f in enumerate(files)])
    return pa.concat_tables(tables)
