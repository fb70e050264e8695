"""Vectors as Arrow columns: an ``(n, d)`` float32 array ↔ a ``fixed_size_list<float32>[d]`` column.

The artifact contract stores every vector column this way (``docs/artifacts.md``); readers and writers
reach these through :mod:`interestrec.artifacts`, which re-exports them.
"""

from __future__ import annotations

import numpy as np


def vectors_to_arrow(vectors: np.ndarray):
    """Wrap an ``(n, d)`` float32 array as an Arrow ``FixedSizeList<float32>[d]`` column.

    Shapes:
        vectors: ``(n, d)``.
    """
    import pyarrow as pa

    v = np.ascontiguousarray(vectors, dtype=np.float32)
    return pa.FixedSizeListArray.from_arrays(pa.array(v.reshape(-1)), v.shape[1])


def arrow_to_vectors(column) -> np.ndarray:
    """Inverse of :func:`vectors_to_arrow`: a fixed-size-list column to an ``(n, d)`` float32 array."""
    import pyarrow as pa

    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if len(column) == 0:
        d = column.type.list_size if pa.types.is_fixed_size_list(column.type) else 0
        return np.zeros((0, d), dtype=np.float32)
    if pa.types.is_fixed_size_list(column.type):
        d = column.type.list_size
        return column.flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False).reshape(-1, d)
    return np.stack(column.to_numpy(zero_copy_only=False)).astype(np.float32)
