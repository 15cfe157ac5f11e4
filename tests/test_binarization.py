"""Truncated unary binarization (splitcodec/binarization.py)."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import splitcodec as sc
from splitcodec.binarization import bin_count, binarize, codeword_lengths, debinarize


def test_codeword_lengths_are_truncated_unary():
    assert codeword_lengths(4).tolist() == [1, 2, 3, 3]
    assert codeword_lengths(2).tolist() == [1, 1]
    assert codeword_lengths(3).tolist() == [1, 2, 2]
    assert codeword_lengths(256)[-2:].tolist() == [255, 255] and codeword_lengths(256)[:3].tolist() == [1, 2, 3]
    assert codeword_lengths(4).dtype == np.int64
    for bad in (1, 0, -3):
        with pytest.raises(ValueError, match=">= 2"):
            codeword_lengths(bad)


def test_codewords_of_n4_are_the_papers():
    for k, word in enumerate(["0", "10", "110", "111"]):
        assert "".join(map(str, binarize([k], 4))) == word
    assert binarize([3, 0, 1, 2], 4).tolist() == [1, 1, 1, 0, 1, 0, 1, 1, 0]
    assert binarize([1, 0], 2).tolist() == [1, 0]
    assert binarize([2], 4).dtype == np.uint8


@given(st.integers(2, 40).flatmap(lambda n: st.tuples(st.just(n), st.lists(st.integers(0, n - 1), max_size=60))))
def test_binarize_debinarize_round_trip_and_bin_count(case):
    n, idx = case
    bins = binarize(np.array(idx, dtype=np.int64), n)
    assert bins.size == bin_count(idx, n) == int(codeword_lengths(n)[idx].sum()) if idx else bins.size == 0
    assert set(bins.tolist()) <= {0, 1}
    np.testing.assert_array_equal(debinarize(bins, n), np.array(idx, dtype=np.int64))
    # bin j of index k is 1 iff k > j: the ones in all codewords add up to the indices
    assert int(bins.sum()) == sum(idx)


def test_debinarize_runs_of_all_ones_codewords():
    # cMax = 3: "111" is a whole codeword; "111" "0" is 3 then 0; "1111110" is 3, 3, 0
    assert debinarize([1, 1, 1], 4).tolist() == [3]
    assert debinarize([1, 1, 1, 0], 4).tolist() == [3, 0]
    assert debinarize([1, 1, 1, 1, 1, 1, 0], 4).tolist() == [3, 3, 0]
    assert debinarize([1, 1, 1, 1, 1, 0, 0], 4).tolist() == [3, 2, 0]
    assert debinarize([0, 0, 1, 1, 1, 1, 1, 1], 4).tolist() == [0, 0, 3, 3]
    assert debinarize([], 4).tolist() == []
    assert debinarize([1, 1], 2).tolist() == [1, 1]
    assert debinarize(np.array([[1, 0], [0, 1]]), 2).tolist() == [1, 0, 0, 1]


def test_debinarize_refuses_bins_that_end_inside_a_codeword():
    for bins in ([1], [1, 1], [0, 1, 1], [1, 1, 1, 1]):
        with pytest.raises(ValueError, match="inside a codeword"):
            debinarize(bins, 4)


def test_binarization_of_nothing_and_out_of_range():
    assert binarize(np.array([], dtype=np.uint8), 4).size == 0
    assert binarize([], 4).dtype == np.uint8
    assert bin_count([], 4) == 0
    for bad in ([-1], [4], [1.5], [0, 5]):
        with pytest.raises(ValueError):
            bin_count(bad, 4)
        with pytest.raises(ValueError):
            binarize(bad, 4)
    with pytest.raises(ValueError, match="integers"):
        binarize(np.array([1.0]), 4)
    with pytest.raises(ValueError, match=r"\[0, 3\].*\[-1, 2\]"):
        binarize([2, -1], 4)
    assert binarize(np.array([3], dtype=np.uint8), 4).tolist() == [1, 1, 1]  # unsigned input
    assert binarize(np.array([[1], [0]]), 4).tolist() == [1, 0, 0]  # any shape, row-major


def test_bin_count_matches_the_coder():
    idx = np.random.default_rng(1).integers(0, 8, size=(3, 5, 7)).astype(np.uint8)
    assert sc.entropy.coder.trace_bins(idx, 8, "paper")[0].size == bin_count(idx, 8)
