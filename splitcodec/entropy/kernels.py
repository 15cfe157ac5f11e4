"""The coding loops: truncated-unary bins of each index, in raster order, coded
with the context the model selects.  Encoder and decoder mirror each other.

Elements are coded plane by plane (a plane is one H×W channel map; planes are
all leading dimensions flattened), rows top to bottom, columns left to right.
Each plane is staged in a zero-bordered scratch buffer (one row above, one
column either side), so neighbour look-ups need no bounds tests; the decoder
dequantizes as it goes, so decoding is a single pass.

The loops are written out flat on purpose: numba compiled helper functions
that pass tuples of coder state in and out into markedly slower code.
"""

from __future__ import annotations

import numba
import numpy as np

from .contexts import PAPER, TEMPORAL, bin_context
from .engine import (
    ERR_OVERRUN,
    ERR_REFERENCE,
    ERR_TRAILING,
    OK,
    PROB_ONE,
    RANGE_INIT,
    adapt,
    decode_bin,
    decode_start,
    encode_bin,
    encode_finish,
    p_zero,
)

ERR_CAPACITY = -1  # the output buffer may be too small: retry with a larger one
ERR_WEIGHTS = -2  # RDO weights given, but not one per plane
ERR_REF = -3  # the temporal model without one reference index per element


@numba.njit(cache=True, nogil=True, inline="never")
def _right_neighbour_costs(x2, q2, q, kmax, v, feedback, extra, above, above_left, above_right, c_min, c_max, rec,
                           top, model, fast, slow, weight, cost_table, out, bin_cost, ref2):
    """For each candidate k of the current element (0, and q - 1 .. kmax), the cheapest cost of the next element
    (value ``x2`` plus ``extra``, the error diffused to it from the row above; plain index ``q2``, row-above
    neighbours given, reference index ``ref2``) when k is its left neighbour, over the same
    candidates as the element itself, priced with the current probabilities; written to ``out[k]``.

    k enters a bin's context only as [k > bin], so each bin of the next element is priced twice (bin_cost rows:
    0-bin and 1-bin cost with [left > bin] false, then true) and every candidate combines those.  A function of
    its own, never inlined: the greedy encoder's loop stays as lean as without look-ahead."""
    kmax2 = min(q2 + 1, top)
    for b in range(min(kmax2, top - 1) + 1):
        for t in range(2):
            ctx = bin_context(b, model, t * (b + 1), above, above_left, above_right, ref2)
            p0 = p_zero(fast, slow, ctx)
            bin_cost[2 * t, b] = cost_table[p0]
            bin_cost[2 * t + 1, b] = cost_table[PROB_ONE - p0]
    base = min(max(x2, c_min), c_max) + extra
    for k in range(kmax + 1):
        if not (k == 0 or k >= q - 1):
            continue
        v2 = base + feedback * (v - rec[k])
        best = np.inf
        ones = np.int64(0)
        for j in range(kmax2 + 1):
            row = 2 if k > j else 0
            bits = ones
            if j < top:
                bits += bin_cost[row, j]
            if j == 0 or j >= q2 - 1:
                d = v2 - rec[j]
                best = min(best, d * d + weight * np.float64(bits))
            if j < top:
                ones += bin_cost[row + 1, j]
        out[k] = best


@numba.njit(cache=True, nogil=True)
def encode(idx, planes, height, width, levels, model, fast, slow, out, trace_bins, trace_p0,
           x, rec, c_min, c_max, weights, cost_table, feedback, feedback_below, lookahead, ref):
    """Encode indices ``idx`` (uint8) into ``out``; returns the byte count, ERR_CAPACITY, ERR_WEIGHTS or ERR_REF.

    ``ref`` holds the reference frame's indices, one per element, read by the ``temporal`` model (which
    needs them all: ERR_REF otherwise) and by nothing else.  ``fast``/``slow`` are the probability state the
    payload starts from (fresh, or carried from the reference frame); they hold the final state on return.

    With a non-empty ``trace_bins`` every bin and the P(0) it was coded with
    are recorded there (rate analysis).

    Rate-distortion optimised choice (``weights`` not empty: one weight per
    plane): ``idx`` holds the plain quantizer's indices of the float32 values
    ``x``; each element's index is re-chosen among 0 and the plain index ± 1 to
    minimise ``(v - rec[k])² + weights[plane] · bits(k)`` with ``v = clip(x) + carry``, where ``bits(k)`` is the exact cost
    of coding k with the current contexts and probabilities (``cost_table[p]`` =
    -log2(p / 2^15) in units of 2^-15 bit), and written back into ``idx``.  The
    decoder needs nothing of this: the stream is an ordinary one.  ``carry`` is
    ``feedback`` times the previous element's error ``v - rec[k]`` in the same
    plane (error diffusion along the raster; 0 at each plane's start): with
    ``feedback`` = 1 the plane's summed error against ``clip(x)`` is the last
    carry, so it stays bounded however long the plane.  With ``feedback_below``
    > 0 the error is diffused in two dimensions: ``feedback`` times it to the
    right neighbour (not across the row's end) and ``feedback_below`` times it
    to the element below, whose target it joins.  With ``lookahead`` each
    candidate's cost also includes the cheapest cost of the right neighbour
    given that candidate as its left context (and carry), priced with the
    current probabilities: the effect of the choice on the next element.
    """
    low = np.int64(0)
    rng = np.int64(RANGE_INIT)
    pos = 0
    nb = 0
    top = levels - 1
    limit = out.size - 2 * top - 8  # at most two bytes per bin, plus the flush
    tracing = trace_bins.size > 0
    temporal = model == TEMPORAL
    if temporal and ref.size < planes * height * width:
        return ERR_REF
    rdo = weights.size > 0
    if rdo and weights.size != planes:
        return ERR_WEIGHTS
    stride = width + 2
    pad = np.zeros((height + 1) * stride, dtype=np.uint8)  # zero border: row 0, columns 0 and W+1
    # the RDO walk's contexts and probabilities, reused to code the chosen index: within one element every bin has
    # its own context, so nothing the walk priced changes before the element is coded
    walk_ctx = np.zeros(max(top, 1), dtype=np.int64)
    walk_p0 = np.zeros(max(top, 1), dtype=np.int64)
    ahead_cost = np.zeros(levels, dtype=np.float64)  # look-ahead: the next element's best cost per candidate
    bin_cost = np.zeros((4, levels), dtype=np.int64)
    two_d = feedback_below > 0.0
    from_above = np.zeros(width + 1, dtype=np.float64)  # error diffused into this row (the last element unused)
    to_below = np.zeros(width + 1, dtype=np.float64)  # error diffused into the next row
    weight = 0.0
    for p in range(planes):
        base = p * height * width
        carry = 0.0
        if rdo:
            weight = weights[p]
        from_above[:] = 0.0
        to_below[:] = 0.0
        for y in range(height):
            if two_d:
                carry = 0.0
                from_above, to_below = to_below, from_above
                to_below[:] = 0.0
            # neighbours slide along the row in registers: one new load per element
            up = y * stride  # row above, in the padded plane
            left, above_left, above = 0, 0, pad[up + 1]
            for xx in range(width):
                if pos > limit:
                    return ERR_CAPACITY
                i = base + y * width + xx
                s = idx[i]
                above_right = pad[up + xx + 2]
                r = ref[i] if temporal else 0
                if rdo:
                    # walk the bins of indices 0 .. plain + 1, pricing each candidate as it is reached
                    v = min(max(np.float64(x[i]), c_min), c_max) + carry + from_above[xx]
                    q = np.int64(s)
                    kmax = min(q + 1, top)
                    best = q
                    best_cost = np.inf
                    ones = np.int64(0)  # cost of the 1-bins before bin k
                    ahead = lookahead and xx + 1 < width
                    if ahead:
                        # an int64 formed before the call: a conditional among the call's arguments made
                        # look-ahead RDO 10-20 % slower
                        r2 = np.int64(ref[i + 1]) if temporal else np.int64(0)
                        # the right neighbour (same row: x[i + 1] is in the plane) sees the candidate on its left;
                        # its row-above neighbours are above_right, above and pad[up + xx + 3] (xx + 3 <= W + 1)
                        _right_neighbour_costs(np.float64(x[i + 1]), np.int64(idx[i + 1]), q, kmax, v, feedback,
                                               from_above[xx + 1], above_right, above, pad[up + xx + 3], c_min,
                                               c_max, rec, top, model, fast, slow, weight, cost_table, ahead_cost,
                                               bin_cost, r2)
                    for k in range(kmax + 1):
                        p0 = 0
                        bits = ones  # index N-1 is N-1 ones, with no terminating bin
                        if k < top:
                            ctx = bin_context(k, model, left, above, above_left, above_right, r)
                            p0 = p_zero(fast, slow, ctx)
                            walk_ctx[k] = ctx
                            walk_p0[k] = p0
                            bits += cost_table[p0]
                        if k == 0 or k >= q - 1:
                            d = v - rec[k]
                            cost = d * d + weight * np.float64(bits)
                            if ahead:
                                cost += ahead_cost[k]
                            if cost < best_cost:
                                best_cost = cost
                                best = k
                        if k < top:
                            ones += cost_table[PROB_ONE - p0]
                    s = np.uint8(best)
                    idx[i] = s
                    err = v - rec[best]
                    carry = feedback * err
                    to_below[xx] += feedback_below * err
                pad[up + stride + xx + 1] = s
                for k in range(top):
                    bit = 1 if s > k else 0
                    if rdo:  # the walk reached every bin up to the chosen index (s <= kmax)
                        ctx = walk_ctx[k]
                        p0 = walk_p0[k]
                    else:
                        ctx = bin_context(k, model, left, above, above_left, above_right, r)
                        p0 = p_zero(fast, slow, ctx)
                    if tracing:
                        trace_bins[nb] = bit
                        trace_p0[nb] = p0
                        nb += 1
                    low, rng, pos = encode_bin(low, rng, pos, out, p0, bit)
                    adapt(fast, slow, ctx, bit)
                    if bit == 0:
                        break
                left, above_left, above = s, above, above_right
    return encode_finish(low, pos, out)


@numba.njit(cache=True, nogil=True)
def decode(buf, start, end, planes, height, width, levels, model, fast, slow, out, table, values, ref):
    """Decode ``planes*height*width`` indices from ``buf[start:end]``: into ``out`` when it is
    not empty, and as ``values[i] = table[index]`` when ``table`` is not empty.  The ``temporal``
    model reads the reference frame's indices ``ref`` (ERR_REFERENCE unless there is one per element);
    ``fast``/``slow`` are the starting probability state and hold the final one on return.

    Never reads outside ``buf[start:end]`` nor writes outside ``out``/``values``; scratch is
    two rows of the plane (none for one-row planes or the ``paper`` model).  Running past the
    payload end is detected after the element in which it happens, so at most N - 1 bins are
    decoded from shifted-in zeros.  Returns (status, position): OK only when the payload was
    consumed exactly.
    """
    temporal = model == TEMPORAL
    if temporal and ref.size < planes * height * width:
        return ERR_REFERENCE, start
    code, rng, pos, status = decode_start(buf, start, end)
    if status != OK:
        return status, pos
    top = levels - 1
    store = out.size > 0
    dequantize = table.size > 0
    keep_rows = model != PAPER and height > 1
    stride = width + 2
    # two alternating rows with a zero column either side: the row above and the current row
    pad = np.zeros(2 * stride if keep_rows else 0, dtype=np.uint8)
    i = 0
    for p in range(planes):
        for y in range(height):
            has_above = keep_rows and y > 0
            cur = (y & 1) * stride
            up = stride - cur
            left, above_left, above = 0, 0, 0
            if has_above:
                above = pad[up + 1]
            for x in range(width):
                above_right = pad[up + x + 2] if has_above else 0
                s = 0
                r = ref[i] if temporal else 0
                for k in range(top):
                    ctx = bin_context(k, model, left, above, above_left, above_right, r)
                    bit, code, rng, pos = decode_bin(code, rng, pos, buf, end, p_zero(fast, slow, ctx))
                    adapt(fast, slow, ctx, bit)
                    if bit == 0:
                        break
                    s += 1
                if keep_rows:
                    pad[cur + x + 1] = s
                left, above_left, above = s, above, above_right
                if store:
                    out[i] = s
                if dequantize:
                    values[i] = table[s]
                i += 1
                if pos > end:  # reads past the end shifted in zeros: stop within this element
                    return ERR_OVERRUN, pos
    if pos < end:
        return ERR_TRAILING, pos
    return OK, pos
