"""The one id-mapping module: original user/item ids ↔ dense ``int64`` indices.

Real logs name users and items with strings (``"AE3V…"``, ``"B07X…"``) or 64-bit integers. Every stage
after ingest works on ``int64`` indices; an :class:`IdMap` per id column (written by ingest as
``ingest/ids/{users,items}.parquet``) translates in both directions, for the report and the Serve API.

Two kinds:
    ``identity``: every original id is a compact non-negative integer and is its own index (MovieLens, the
        synthetic generator): the index space is unchanged and ``to_original`` gives the integer back.
    ``dense``: string ids (and 64-bit integer ids, by their exact decimal text); index ``i`` is the
        ``i``-th id in sorted order.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from interestrec.errors import UnknownIdError  # the one unknown-id error, raised (and importable) here

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
KINDS = ("identity", "dense")


@dataclass(frozen=True, eq=False)
class IdMap:
    """Mapping between original ids and ``int64`` indices.

    Attributes:
        kind: ``identity`` or ``dense``.
        ids: the known original ids. ``identity``: sorted int64 array; ``dense``: sorted object array of
            str, position = index.

    Shapes:
        ids: ``(n,)``.
    """

    kind: str
    ids: np.ndarray

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown IdMap kind '{self.kind}' ({', '.join(KINDS)})")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, IdMap) and self.kind == other.kind and np.array_equal(self.ids, other.ids)

    __hash__ = None  # type: ignore[assignment]

    def __len__(self) -> int:
        return len(self.ids)

    @classmethod
    def identity(cls, ids: Iterable[int]) -> IdMap:
        """An identity map over integer ids (each id is its own index)."""
        return cls("identity", np.unique(np.asarray(list(ids) if not isinstance(ids, np.ndarray) else ids, dtype=np.int64)))

    @classmethod
    def dense(cls, ids: Iterable[str]) -> IdMap:
        """A dense map over string ids: index = position in sorted order."""
        uniq = sorted({str(i) for i in ids})
        return cls("dense", np.array(uniq, dtype=object))

    def to_index(self, original: Sequence | np.ndarray, missing: int | None = None) -> np.ndarray:
        """Indices of ``original`` ids; unknown ids raise :class:`UnknownIdError` unless ``missing`` is given.

        Shapes:
            original: ``(m,)``; returns ``(m,)`` int64.
        """
        if self.kind == "identity":
            keys = np.asarray([_as_int(v) for v in original], dtype=object)
            ok = np.array([k is not None for k in keys], dtype=bool)
            vals = np.array([k if k is not None else 0 for k in keys], dtype=np.int64)
            found = ok & (lookup(self.ids, vals) >= 0)
            out = vals
        else:
            import pandas as pd

            pos = pd.Index(self.ids).get_indexer(pd.Index([str(v) for v in original], dtype=object))
            found = pos >= 0
            out = pos.astype(np.int64)
        if not found.all():
            if missing is None:
                bad = [original[i] for i in np.flatnonzero(~found)[:5]]
                raise UnknownIdError(f"unknown id(s) {bad}")
            out = np.where(found, out, missing).astype(np.int64)
        return out

    def to_original(self, index: Sequence | np.ndarray) -> list:
        """Original ids (``int`` for identity maps, ``str`` for dense ones) of int64 indices."""
        idx = np.asarray(index, dtype=np.int64)
        if self.kind == "identity":
            return [int(i) for i in idx]
        if len(idx) and (idx.min() < 0 or idx.max() >= len(self.ids)):
            raise UnknownIdError(f"index out of range 0..{len(self.ids) - 1}")
        return [str(s) for s in self.ids[idx]]

    def to_table(self):
        """This map as a ``pyarrow.Table`` (``index`` int64, ``id`` string) with the kind in its metadata."""
        import pyarrow as pa

        index = self.ids if self.kind == "identity" else np.arange(len(self.ids), dtype=np.int64)
        ids = [str(int(v)) for v in self.ids] if self.kind == "identity" else list(self.ids)
        table = pa.table({"index": pa.array(index, pa.int64()), "id": pa.array(ids, pa.string())})
        return table.replace_schema_metadata({"interestrec.idmap.kind": self.kind})

    @classmethod
    def from_table(cls, table) -> IdMap:
        """Inverse of :meth:`to_table`."""
        kind = (table.schema.metadata or {}).get(b"interestrec.idmap.kind", b"").decode()
        if kind == "identity":
            return cls("identity", table.column("index").to_numpy().astype(np.int64))
        if kind == "dense":
            ids = np.array(table.column("id").to_pylist(), dtype=object)
            index = table.column("index").to_numpy()
            if not np.array_equal(index, np.arange(len(ids))):
                raise ValueError("dense id map: index column is not 0..n-1")
            return cls("dense", ids)
        raise ValueError(f"not an id map table (kind metadata {kind!r})")

    @classmethod
    def from_parquet(cls, path: str) -> IdMap:
        """Load a map written by ingest (local path or pyarrow filesystem URI)."""
        from interestrec import artifacts

        return cls.from_table(artifacts.read_parquet(path))

    def to_parquet(self, path: str) -> None:
        """Write this map atomically as parquet."""
        from interestrec import artifacts

        artifacts.write_parquet(path, self.to_table())


def _as_int(v) -> int | None:
    if isinstance(v, int | np.integer) and not isinstance(v, bool):
        return int(v) if INT64_MIN <= int(v) <= INT64_MAX else None
    try:
        i = int(str(v).strip())
    except ValueError:
        return None
    return i if INT64_MIN <= i <= INT64_MAX else None


def load_id_maps(ingest_dir: str) -> tuple[IdMap, IdMap]:
    """``(users, items)`` maps of an ingest output directory."""
    from interestrec import artifacts, layout

    return (IdMap.from_parquet(artifacts.join(ingest_dir, layout.INGEST_USER_IDS)),
            IdMap.from_parquet(artifacts.join(ingest_dir, layout.INGEST_ITEM_IDS)))


def lookup(index: np.ndarray, values: Sequence | np.ndarray, missing: int = -1) -> np.ndarray:
    """Position of each value in the sorted array ``index``, ``missing`` for values it does not hold.

    The fast path (binary search) behind every id → row lookup of the package; :func:`lookup_reference`
    is the obvious dictionary version it is tested equal to.

    Args:
        index: sorted, unique keys (``int64`` ids, or an object array of strings).
        values: keys to look up, of a type comparable with ``index``.
        missing: the position given to a value ``index`` does not hold.

    Shapes:
        index: ``(n,)``; values: ``(m,)``; returns ``(m,)`` int64.
    """
    index = np.asarray(index)
    values = np.asarray(values)
    if len(index) == 0:
        return np.full(len(values), missing, np.int64)
    pos = np.minimum(np.searchsorted(index, values), len(index) - 1)
    return np.where(index[pos] == values, pos, missing).astype(np.int64)


def lookup_reference(index: Sequence | np.ndarray, values: Sequence | np.ndarray, missing: int = -1) -> np.ndarray:
    """Reference implementation of :func:`lookup` (a dictionary from key to position)."""
    where = {k: i for i, k in enumerate(np.asarray(index).tolist())}
    return np.array([where.get(v, missing) for v in np.asarray(values).tolist()], np.int64)


def align(ids: Sequence | np.ndarray, values: np.ndarray, index: np.ndarray, dim: int | None = None) -> np.ndarray:
    """Rows of ``values`` placed at the positions of their ``ids`` in the sorted catalogue ``index``.

    Catalogue entries without a row get zeros; rows whose id the catalogue does not hold are dropped; of
    repeated ids the last row wins. :func:`align_reference` is the loop it is tested equal to.

    Args:
        ids: the id of each row of ``values``.
        values: the rows (e.g. item vectors read from an ``(item_id, vector)`` table).
        index: the sorted catalogue the result is aligned with.
        dim: the row width when ``values`` may be empty (defaults to ``values.shape[1]``).

    Shapes:
        ids: ``(n,)``; values: ``(n, d)``; index: ``(N,)``; returns ``(N, d)`` float32.
    """
    out = np.zeros((len(index), values.shape[1] if dim is None else dim), np.float32)
    if len(index) == 0 or len(ids) == 0:
        return out
    pos = lookup(index, ids)
    ok = pos >= 0
    out[pos[ok]] = values[ok]
    return out


def align_reference(ids: Sequence | np.ndarray, values: np.ndarray, index: np.ndarray, dim: int | None = None) -> np.ndarray:
    """Reference implementation of :func:`align` (one row at a time)."""
    out = np.zeros((len(index), values.shape[1] if dim is None else dim), np.float32)
    where = {k: i for i, k in enumerate(np.asarray(index).tolist())}
    for k, row in zip(np.asarray(ids).tolist(), values):
        if k in where:
            out[where[k]] = row
    return out


def align_table(table, index: np.ndarray, id_col: str = "item_id", dim: int | None = None) -> np.ndarray:
    """The ``vector`` column of an ``(id_col, vector)`` Arrow table aligned with the sorted ``index`` (:func:`align`).

    Shapes:
        returns ``(len(index), d)`` float32.
    """
    from interestrec import artifacts

    return align(table[id_col].to_numpy(), artifacts.arrow_to_vectors(table["vector"]), index, dim)
