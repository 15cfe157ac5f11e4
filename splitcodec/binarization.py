"""Truncated unary binarization (stage 2 of the codec).

With ``cMax = N - 1``, index ``k < N - 1`` becomes ``k`` ones followed by a zero
and ``N - 1`` becomes ``N - 1`` ones.  For N = 4: 0 → ``0``, 1 → ``10``,
2 → ``110``, 3 → ``111``.  Bin position ``j`` of index ``k`` is ``1`` iff
``k > j``; the arithmetic-coding kernels use exactly that rule, these
vectorised helpers serve rate estimation, tests and documentation.
"""

from __future__ import annotations

import numpy as np

__all__ = ["codeword_lengths", "binarize", "debinarize", "bin_count"]


def codeword_lengths(levels: int) -> np.ndarray:
    """Length in bins of each index's codeword: ``b_n = n + 1`` for n < N-1, ``N - 1`` for the last."""
    n = int(levels)
    if n < 2:
        raise ValueError(f"levels must be >= 2, got {n}")
    b = np.arange(1, n + 1, dtype=np.int64)
    b[-1] = n - 1
    return b


def _indices(indices, levels: int) -> np.ndarray:
    """``indices`` as a flat int64 array, checked to be integers in [0, N-1] (an empty input is fine)."""
    a = np.asarray(indices)
    if a.size and a.dtype.kind not in "ui":
        raise ValueError(f"indices must be integers, got dtype {a.dtype}")
    idx = a.reshape(-1).astype(np.int64)
    if idx.size and (idx.min() < 0 or idx.max() >= int(levels)):
        raise ValueError(f"indices must be in [0, {int(levels) - 1}], got range [{idx.min()}, {idx.max()}]")
    return idx


def bin_count(indices: np.ndarray, levels: int) -> int:
    """Total number of bins the indices binarize to."""
    return int(codeword_lengths(levels)[_indices(indices, levels)].sum())


def binarize(indices: np.ndarray, levels: int) -> np.ndarray:
    """Concatenated truncated-unary bins (uint8 0/1) of ``indices`` in order."""
    idx = _indices(indices, levels)
    if idx.size == 0:
        return np.zeros(0, dtype=np.uint8)
    lengths = codeword_lengths(levels)[idx]
    starts = np.concatenate(([0], np.cumsum(lengths)[:-1]))
    total = int(lengths.sum())
    # position of each bin inside its codeword
    pos = np.arange(total, dtype=np.int64) - np.repeat(starts, lengths)
    return (np.repeat(idx, lengths) > pos).astype(np.uint8)


def debinarize(bins: np.ndarray, levels: int) -> np.ndarray:
    """Inverse of :func:`binarize` (the bins must form whole codewords)."""
    b = np.asarray(bins, dtype=np.uint8).reshape(-1)
    m = int(levels) - 1  # cMax: the all-ones codeword has no terminating zero
    zero_pos = np.flatnonzero(b == 0)
    run_starts = np.concatenate(([0], zero_pos[:-1] + 1))
    run_lens = zero_pos - run_starts  # ones before each zero
    tail_len = b.size - (int(zero_pos[-1]) + 1 if zero_pos.size else 0)
    if tail_len % m:
        raise ValueError("bins end inside a codeword")
    # a run of r ones then a zero is r // m codewords of m ones, then index r % m
    full = run_lens // m
    counts = full + 1
    seq = np.full(int(counts.sum()) + tail_len // m, m, dtype=np.int64)
    offs = np.concatenate(([0], np.cumsum(counts)[:-1])).astype(np.int64)
    seq[offs + full] = run_lens % m
    return seq
