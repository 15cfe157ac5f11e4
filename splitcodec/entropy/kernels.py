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

from .contexts import SPATIAL, spatial_context
from .engine import (
    ERR_OVERRUN,
    ERR_TRAILING,
    OK,
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


@numba.njit(cache=True, nogil=True)
def encode(idx, planes, height, width, levels, model, fast, slow, out, trace_bins, trace_p0,
           x, rec, c_min, c_max, weights, cost_table, feedback, lookahead):
    """Encode indices ``idx`` (uint8) into ``out``; returns the byte count, ERR_CAPACITY or ERR_WEIGHTS.

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
    carry, so it stays bounded however long the plane.  With ``lookahead`` each
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
    spatial = model == SPATIAL
    rdo = weights.size > 0
    if rdo and weights.size != planes:
        return ERR_WEIGHTS
    stride = width + 2
    pad = np.zeros((height + 1) * stride, dtype=np.uint8)  # zero border: row 0, columns 0 and W+1
    weight = 0.0
    for p in range(planes):
        base = p * height * width
        carry = 0.0
        if rdo:
            weight = weights[p]
        for y in range(height):
            # neighbours slide along the row in registers: one new load per element
            up = y * stride  # row above, in the padded plane
            left, above_left, above = 0, 0, pad[up + 1]
            for xx in range(width):
                if pos > limit:
                    return ERR_CAPACITY
                i = base + y * width + xx
                s = idx[i]
                above_right = pad[up + xx + 2]
                if rdo:
                    # walk the bins of indices 0 .. plain + 1, pricing each candidate as it is reached
                    v = min(max(np.float64(x[i]), c_min), c_max) + carry
                    q = np.int64(s)
                    kmax = min(q + 1, top)
                    best = q
                    best_cost = np.inf
                    ones = np.int64(0)  # cost of the 1-bins before bin k
                    for k in range(kmax + 1):
                        p0 = 0
                        bits = ones  # index N-1 is N-1 ones, with no terminating bin
                        if k < top:
                            if spatial:
                                ctx = spatial_context(k, left, above, above_left, above_right)
                            else:
                                ctx = k
                            p0 = p_zero(fast, slow, ctx)
                            bits += cost_table[p0]
                        if k == 0 or k >= q - 1:
                            d = v - rec[k]
                            cost = d * d + weight * np.float64(bits)
                            if lookahead and xx + 1 < width:
                                # the right neighbour (same row, so x[i + 1] is in the plane) sees k on its left;
                                # its row-above neighbours are pad[up + xx + 2], above and pad[up + xx + 3]
                                # (xx + 3 <= width + 1: inside the padded row)
                                v2 = min(max(np.float64(x[i + 1]), c_min), c_max) + feedback * d
                                q2 = np.int64(idx[i + 1])
                                best2 = np.inf
                                ones2 = np.int64(0)
                                for k2 in range(min(q2 + 1, top) + 1):
                                    p2 = 0
                                    bits2 = ones2
                                    if k2 < top:
                                        if spatial:
                                            ctx2 = spatial_context(k2, k, above_right, above, pad[up + xx + 3])
                                        else:
                                            ctx2 = k2
                                        p2 = p_zero(fast, slow, ctx2)
                                        bits2 += cost_table[p2]
                                    if k2 == 0 or k2 >= q2 - 1:
                                        d2 = v2 - rec[k2]
                                        best2 = min(best2, d2 * d2 + weight * np.float64(bits2))
                                    if k2 < top:
                                        ones2 += cost_table[32768 - p2]
                                cost += best2
                            if cost < best_cost:
                                best_cost = cost
                                best = k
                        if k < top:
                            ones += cost_table[32768 - p0]
                    s = np.uint8(best)
                    idx[i] = s
                    carry = feedback * (v - rec[best])
                pad[up + stride + xx + 1] = s
                for k in range(top):
                    bit = 1 if s > k else 0
                    if spatial:
                        ctx = spatial_context(k, left, above, above_left, above_right)
                    else:
                        ctx = k
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
def decode(buf, start, end, planes, height, width, levels, model, fast, slow, out, table, values):
    """Decode ``planes*height*width`` indices from ``buf[start:end]``: into ``out`` when it is
    not empty, and as ``values[i] = table[index]`` when ``table`` is not empty.

    Never reads outside ``buf[start:end]`` nor writes outside ``out``/``values``; scratch is
    two rows of the plane (none for one-row planes or the ``paper`` model).  Running past the
    payload end is detected after the element in which it happens, so at most N - 1 bins are
    decoded from shifted-in zeros.  Returns (status, position): OK only when the payload was
    consumed exactly.
    """
    code, rng, pos, status = decode_start(buf, start, end)
    if status != OK:
        return status, pos
    top = levels - 1
    store = out.size > 0
    dequantize = table.size > 0
    spatial = model == SPATIAL
    keep_rows = spatial and height > 1
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
                for k in range(top):
                    if spatial:
                        ctx = spatial_context(k, left, above, above_left, above_right)
                    else:
                        ctx = k
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
