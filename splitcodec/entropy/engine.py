"""The binary arithmetic coding engine: integer arithmetic only, numba-compiled.

Everything here is specified in ``docs/bitstream.md`` (section "Arithmetic
engine") precisely enough to reimplement in C; a pure-Python copy in
``tests/reference_engine.py`` must produce the same bytes.

* Probability state per context: two 15-bit estimates of P(bin = 0), a fast
  one (shift 4) and a slow one (shift 7), both starting at 1/2.  The coding
  probability is their mean.
* Coder: 32-bit range, renormalised a byte at a time while ``range < 2^24``;
  carries propagate back into bytes already written.
* Termination: the 4 bytes of ``low``; the decoder therefore reads exactly the
  whole payload, so truncation and trailing bytes are both detectable.

The functions are ``inline="always"`` so the coding loops in
:mod:`splitcodec.entropy.kernels` compile to one tight loop; state travels as
plain integers, never as Python objects.
"""

from __future__ import annotations

import numba
import numpy as np

PROB_BITS = 15
PROB_ONE = 1 << PROB_BITS
PROB_INIT = PROB_ONE // 2
FAST_SHIFT = 4
SLOW_SHIFT = 7
RANGE_BITS = 32
RANGE_INIT = (1 << RANGE_BITS) - 1
RANGE_TOP = 1 << 24
LOW_MASK = (1 << RANGE_BITS) - 1
FLUSH_BYTES = 4

# Every bin narrows the range by at least a factor f = 16773631/16809983 (the widest split: range
# 2^24 + 2^15 - 1 with P = 32697/32768; docs/bitstream.md §3), and every payload byte after the first
# four widens it by 2^8, so a payload of L >= 4 bytes codes fewer than 8 (L - 3) / -log2(f) < 2562 (L - 3)
# bins -- for any bytes at all.  A decoder therefore never decodes more than that many bins from L bytes,
# and a stream declaring more elements (each element codes at least one bin) cannot be valid.
MAX_BINS_PER_BYTE = 2562


def max_bins(payload_bytes: int) -> int:
    """Upper bound on the bins any payload of ``payload_bytes`` bytes can code (0 below 4 bytes)."""
    return MAX_BINS_PER_BYTE * (payload_bytes - 3) if payload_bytes >= FLUSH_BYTES else 0


# decoder status codes (kernels return them; the codec maps them to exceptions)
OK = 0
ERR_OVERRUN = 1  # needed bytes past the end of the payload
ERR_BAD_START = 2  # first four bytes cannot start a valid stream
ERR_TRAILING = 3  # payload bytes left unread
ERR_REFERENCE = 4  # the temporal model without one reference index per element


def new_state(n_contexts: int) -> tuple[np.ndarray, np.ndarray]:
    """Fresh (fast, slow) probability estimates for ``n_contexts`` contexts."""
    fast = np.full(n_contexts, PROB_INIT, dtype=np.int32)
    return fast, fast.copy()


@numba.njit(inline="always")
def p_zero(fast, slow, ctx):
    """P(bin = 0) of context ``ctx`` in units of 2^-15 (always in [71, 32697])."""
    return (fast[ctx] + slow[ctx]) >> 1


@numba.njit(inline="always")
def adapt(fast, slow, ctx, bit):
    """Move both estimates of ``ctx`` towards the bin just coded."""
    if bit:
        fast[ctx] -= fast[ctx] >> FAST_SHIFT
        slow[ctx] -= slow[ctx] >> SLOW_SHIFT
    else:
        fast[ctx] += (PROB_ONE - fast[ctx]) >> FAST_SHIFT
        slow[ctx] += (PROB_ONE - slow[ctx]) >> SLOW_SHIFT


@numba.njit(inline="always")
def encode_bin(low, rng, pos, out, p0, bit):
    """Code one bin with P(0) = p0 / 2^15; returns the new (low, rng, pos)."""
    bound = (rng >> PROB_BITS) * p0
    if bit:
        low += bound
        rng -= bound
        if low > LOW_MASK:  # carry into the bytes already written
            low &= LOW_MASK
            i = pos - 1
            while i >= 0 and out[i] == 0xFF:
                out[i] = 0
                i -= 1
            if i >= 0:
                out[i] += 1
    else:
        rng = bound
    while rng < RANGE_TOP:
        out[pos] = (low >> 24) & 0xFF
        pos += 1
        low = (low << 8) & LOW_MASK
        rng <<= 8
    return low, rng, pos


@numba.njit(inline="always")
def encode_finish(low, pos, out):
    """Terminate: write the 4 bytes of ``low`` (big-endian); returns the final length."""
    out[pos] = (low >> 24) & 0xFF
    out[pos + 1] = (low >> 16) & 0xFF
    out[pos + 2] = (low >> 8) & 0xFF
    out[pos + 3] = low & 0xFF
    return pos + FLUSH_BYTES


@numba.njit(inline="always")
def decode_start(buf, start, end):
    """Read the first 4 payload bytes; returns (code, rng, pos, status)."""
    if end - start < FLUSH_BYTES:
        return 0, RANGE_INIT, end + 1, ERR_OVERRUN
    code = (
        (np.int64(buf[start]) << 24)
        | (np.int64(buf[start + 1]) << 16)
        | (np.int64(buf[start + 2]) << 8)
        | np.int64(buf[start + 3])
    )
    if code >= RANGE_INIT:  # no encoder can write this: the code must lie below the range
        return code, RANGE_INIT, start + FLUSH_BYTES, ERR_BAD_START
    return code, RANGE_INIT, start + FLUSH_BYTES, OK


@numba.njit(inline="always")
def decode_bin(code, rng, pos, buf, end, p0):
    """Decode one bin; returns (bit, code, rng, pos).

    Reads past ``end`` never touch memory: they shift in zeros and push ``pos``
    beyond ``end``, which the caller reports as an overrun.
    """
    bound = (rng >> PROB_BITS) * p0
    if code < bound:
        rng = bound
        bit = 0
    else:
        code -= bound
        rng -= bound
        bit = 1
    while rng < RANGE_TOP:
        if pos < end:
            code = (code << 8) | np.int64(buf[pos])
        else:
            code = code << 8
        pos += 1
        rng <<= 8
    return bit, code, rng, pos
