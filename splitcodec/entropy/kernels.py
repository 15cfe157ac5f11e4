"""The coding loops: truncated-unary bins of each index, in raster order, coded
with the context the model selects.  Encoder and decoder mirror each other.

Elements are coded plane by plane (a plane is one H×W channel map; planes are
all leading dimensions flattened), rows top to bottom, columns left to right.
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


@numba.njit(cache=True, nogil=True)
def encode_indices(idx, planes, height, width, levels, model, fast, slow, out, trace_bins, trace_p0):
    """Encode ``idx`` (uint8, planes*height*width) into ``out``.

    Returns the number of bytes written, or -1 when ``out`` may be too small
    (the caller retries with a larger buffer).  When ``trace_bins`` is not empty
    every bin and the P(0) it was coded with are recorded there (rate analysis).
    """
    low = np.int64(0)
    rng = np.int64(RANGE_INIT)
    pos = 0
    cap = out.size
    per_elem = 2 * (levels - 1) + 2  # at most two bytes per bin
    tracing = trace_bins.size > 0
    nb = 0
    top = levels - 1
    plane_size = height * width
    for p in range(planes):
        base = p * plane_size
        for y in range(height):
            row = base + y * width
            for x in range(width):
                if pos + per_elem + 8 > cap:
                    return -1
                i = row + x
                s = np.int64(idx[i])
                left = above = above_left = above_right = np.int64(0)
                if model == SPATIAL:
                    if x > 0:
                        left = idx[i - 1]
                    if y > 0:
                        above = idx[i - width]
                        if x > 0:
                            above_left = idx[i - width - 1]
                        if x < width - 1:
                            above_right = idx[i - width + 1]
                for k in range(top):
                    bit = 1 if s > k else 0
                    if model == SPATIAL:
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
    return encode_finish(low, pos, out)


@numba.njit(cache=True, nogil=True)
def decode_indices(buf, start, end, planes, height, width, levels, model, fast, slow, out):
    """Decode ``planes*height*width`` indices from ``buf[start:end]`` into ``out``.

    Never reads outside ``buf[start:end]`` nor writes outside ``out``.
    Returns (status, position): OK only when the payload was consumed exactly.
    """
    code, rng, pos, status = decode_start(buf, start, end)
    if status != OK:
        return status, pos
    top = levels - 1
    plane_size = height * width
    for p in range(planes):
        base = p * plane_size
        for y in range(height):
            row = base + y * width
            for x in range(width):
                i = row + x
                left = above = above_left = above_right = np.int64(0)
                if model == SPATIAL:
                    if x > 0:
                        left = out[i - 1]
                    if y > 0:
                        above = out[i - width]
                        if x > 0:
                            above_left = out[i - width - 1]
                        if x < width - 1:
                            above_right = out[i - width + 1]
                s = 0
                for k in range(top):
                    if model == SPATIAL:
                        ctx = spatial_context(k, left, above, above_left, above_right)
                    else:
                        ctx = k
                    bit, code, rng, pos = decode_bin(code, rng, pos, buf, end, p_zero(fast, slow, ctx))
                    adapt(fast, slow, ctx, bit)
                    if bit == 0:
                        break
                    s += 1
                out[i] = s
                if pos > end:
                    return ERR_OVERRUN, pos
    if pos > end:
        return ERR_OVERRUN, pos
    if pos < end:
        return ERR_TRAILING, pos
    return OK, pos
