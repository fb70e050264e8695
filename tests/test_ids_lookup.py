"""The shared id lookup / catalogue alignment (``interestrec.ids``) against its reference implementations."""

from __future__ import annotations

import numpy as np
import pytest

from interestrec.ids import align, align_reference, align_table, lookup, lookup_reference


@pytest.mark.parametrize("seed", range(5))
def test_lookup_equals_reference_on_int_ids(seed):
    rng = np.random.default_rng(seed)
    index = np.unique(rng.integers(-50, 200, size=rng.integers(0, 60)))
    values = rng.integers(-60, 220, size=100)
    got = lookup(index, values)
    assert got.dtype == np.int64 and got.shape == (100,)
    np.testing.assert_array_equal(got, lookup_reference(index, values))
    np.testing.assert_array_equal(lookup(index, values, missing=-7), lookup_reference(index, values, missing=-7))


def test_lookup_on_strings_and_edges():
    index = np.array(["a", "c", "e"], dtype=object)
    values = np.array(["e", "b", "a", "z", "c"], dtype=object)
    np.testing.assert_array_equal(lookup(index, values), [2, -1, 0, -1, 1])
    np.testing.assert_array_equal(lookup(index, values), lookup_reference(index, values))
    np.testing.assert_array_equal(lookup(np.zeros(0, np.int64), np.array([1, 2])), [-1, -1])
    assert lookup(np.array([1, 2]), np.zeros(0, np.int64)).shape == (0,)


@pytest.mark.parametrize("seed", range(5))
def test_align_equals_reference(seed):
    rng = np.random.default_rng(seed)
    index = np.unique(rng.integers(0, 100, size=40))
    ids = rng.integers(0, 120, size=30)  # some unknown, some repeated (the last row wins)
    values = rng.normal(size=(30, 4))
    got = align(ids, values, index)
    assert got.dtype == np.float32 and got.shape == (len(index), 4)
    np.testing.assert_array_equal(got, align_reference(ids, values, index))
    known = np.isin(index, ids)
    assert (got[~known] == 0).all() and (np.abs(got[known]).sum(axis=1) > 0).all()


def test_align_empty_inputs_keep_the_width():
    assert align(np.zeros(0, np.int64), np.zeros((0, 3)), np.array([1, 2]), dim=3).shape == (2, 3)
    assert align(np.array([1]), np.ones((1, 3)), np.zeros(0, np.int64)).shape == (0, 3)


def test_align_table_reads_the_vector_column():
    import pyarrow as pa

    from interestrec.artifacts import vectors_to_arrow

    vec = np.arange(6, dtype=np.float32).reshape(3, 2)
    t = pa.table({"item_id": pa.array([30, 10, 99], pa.int64()), "vector": vectors_to_arrow(vec)})
    got = align_table(t, np.array([10, 20, 30], np.int64))
    np.testing.assert_array_equal(got, [[2, 3], [0, 0], [0, 1]])
