"""Python entry points to the coding kernels: shapes, buffers, error mapping."""

from __future__ import annotations

import math

import numpy as np

from ..errors import CorruptPayloadError, QuantizerError, TrailingBytesError, TruncatedPayloadError
from . import engine, kernels
from .contexts import TEMPORAL, context_model_id, n_contexts

_NO_TRACE_BINS = np.zeros(0, dtype=np.uint8)
_NO_TRACE_P0 = np.zeros(0, dtype=np.int32)
_NO_TABLE = np.zeros(0, dtype=np.float32)
_NO_LEVELS = np.zeros(0, dtype=np.float64)
_NO_WEIGHTS = _NO_LEVELS
_NO_REF = np.zeros(0, dtype=np.uint8)
DIFFUSIONS = ("row", "plane")  # error feedback along the raster, or split between right and below

# -log2(p / 2^15) in units of 2^-15 bit for every 15-bit probability (index 0 unused): the exact cost of a bin
COST_FRACTION_BITS = 15
COST_TABLE = np.concatenate((
    [0], np.rint(-np.log2(np.arange(1, engine.PROB_ONE + 1, dtype=np.float64) / engine.PROB_ONE)
                 * (1 << COST_FRACTION_BITS)),
)).astype(np.int64)


def plane_geometry(shape) -> tuple[int, int, int]:
    """(planes, height, width): the last two axes are the plane, the rest are stacked."""
    shape = tuple(int(s) for s in shape)
    if len(shape) == 0:
        return 1, 1, 1
    width = shape[-1]
    height = shape[-2] if len(shape) >= 2 else 1
    planes = math.prod(shape[:-2]) if len(shape) > 2 else 1
    return planes, height, width


def _contiguous_indices(idx: np.ndarray, levels: int, check: bool = True) -> np.ndarray:
    """Flat contiguous uint8 indices; with ``check``, the values are first checked to be integers in
    [0, N-1] as given (before any cast could wrap 256 to 0 or truncate 1.5 to 1)."""
    if check:
        raw = np.asarray(idx)
        if raw.size and raw.dtype.kind not in "ui":
            raise QuantizerError(f"indices must be integers, got dtype {raw.dtype}")
        if raw.size and (int(raw.min()) < 0 or int(raw.max()) >= levels):
            raise QuantizerError(
                f"indices must be in [0, {levels - 1}], got range [{int(raw.min())}, {int(raw.max())}]"
            )
    return np.ascontiguousarray(idx, dtype=np.uint8).reshape(-1)


def _initial_capacity(elements: int, levels: int) -> int:
    bits = max(1, math.ceil(math.log2(levels)))
    return elements * bits // 8 + 2 * levels + 64


def _reference(model: int, ref, elements: int) -> np.ndarray:
    """The reference frame's indices as the kernels read them: one uint8 per element for the ``temporal``
    model, nothing for the others (which must not be given one)."""
    if model != TEMPORAL:
        if ref is not None:
            raise ValueError("only the temporal context model reads a reference frame")
        return _NO_REF
    if ref is None:
        raise ValueError("the temporal context model needs the reference frame's indices")
    r = np.ascontiguousarray(ref, dtype=np.uint8).reshape(-1)
    if r.size != elements:
        raise ValueError(f"the reference frame has {r.size} indices, the frame {elements}")
    return r


def _start_state(model: int, levels: int, state) -> tuple[np.ndarray, np.ndarray]:
    """Copies of a carried probability state (checked to fit the model), or a fresh one."""
    n = n_contexts(model, levels)
    if state is None:
        return engine.new_state(n)
    fast, slow = (np.array(a, dtype=np.int32) for a in state)
    if fast.shape != (n,) or slow.shape != (n,):
        raise ValueError(f"a carried probability state must hold {n} contexts, got {fast.shape} / {slow.shape}")
    return fast, slow


def _run_encoder(idx: np.ndarray, shape, levels: int, model, trace_bins, trace_p0, check: bool = True,
                 rdo=None, ref=None, state=None, return_state: bool = False):
    """Encode; ``rdo`` = (values, reconstruction, c_min, c_max, weights, feedback, feedback_below, lookahead)
    chooses the indices by rate-distortion, ``weights`` one float64 rate weight per plane, ``feedback`` and
    ``feedback_below`` the error-diffusion gains to the right and downwards (``idx`` must then be a writable
    contiguous uint8 array: the chosen indices are written into it).  ``ref``: the reference frame's indices
    (``temporal`` model); ``state``: the (fast, slow) probability state to start from (not modified);
    ``return_state``: return ``(bytes, final state)``."""
    model = context_model_id(model)
    planes, height, width = plane_geometry(shape)
    flat = idx.reshape(-1) if rdo is not None else _contiguous_indices(idx, levels, check)
    reference = _reference(model, ref, flat.size)
    x, rec, lo, hi, weights, feedback, feedback_below, lookahead = (
        rdo if rdo is not None else (_NO_TABLE, _NO_LEVELS, 0.0, 0.0, _NO_WEIGHTS, 0.0, 0.0, False))
    cap = _initial_capacity(flat.size, levels)
    while True:
        out = np.empty(cap, dtype=np.uint8)
        fast, slow = _start_state(model, levels, state)
        n = kernels.encode(flat, planes, height, width, levels, model, fast, slow, out, trace_bins, trace_p0,
                           x, rec, float(lo), float(hi), weights, COST_TABLE, float(feedback), float(feedback_below),
                           bool(lookahead), reference)
        if n >= 0:
            data = out[:n].tobytes()
            return (data, (fast, slow)) if return_state else data
        if n == kernels.ERR_WEIGHTS:
            raise ValueError(f"need one RDO weight per plane ({planes}), got {weights.size}")
        if n == kernels.ERR_REF:  # _reference checked the size: unreachable unless the kernel changes
            raise ValueError("the temporal context model needs one reference index per element")
        cap *= 2


def encode_rdo(idx: np.ndarray, values: np.ndarray, reconstruction: np.ndarray, c_min: float, c_max: float,
               weight, levels: int, model="spatial", feedback: float = 0.0, lookahead: bool = False,
               diffusion: str = "row", *, ref=None, state=None, return_state: bool = False):
    """Entropy-code ``values`` choosing each index by rate-distortion: ``idx`` (uint8, contiguous,
    the plain quantizer's indices of ``values``) is overwritten with the chosen indices.  The cost of
    index k is ``(clip(x) - reconstruction[k])² + weight · bits(k)`` with bits in units of 2^-15 bit;
    ``weight`` is one number, or one per plane (``plane_geometry``) of finite non-negative numbers.
    ``feedback`` in [0, 1] diffuses each element's error into the next element's target (same plane;
    ``diffusion="plane"``: half of it into the right neighbour's, half into the one below's);
    ``lookahead`` prices each candidate with the right neighbour's best response.  ``ref``, ``state`` and
    ``return_state`` as for :func:`encode_indices`."""
    if not (idx.dtype == np.uint8 and idx.flags.c_contiguous and idx.flags.writeable):
        raise ValueError("idx must be a writable contiguous uint8 array")
    x = np.ascontiguousarray(values, dtype=np.float32).reshape(-1)
    if x.size != idx.size:
        raise ValueError("values and indices differ in size")
    rec = np.ascontiguousarray(reconstruction, dtype=np.float64)
    if rec.size != levels:
        raise ValueError(f"need {levels} reconstruction levels")
    planes = plane_geometry(np.shape(idx))[0]
    w = np.ascontiguousarray(weight, dtype=np.float64).reshape(-1)
    if w.size == 1:
        w = np.full(planes, w[0])
    if not np.all(np.isfinite(w) & (w >= 0)):
        raise ValueError("RDO weights must be finite and >= 0")
    if not 0.0 <= feedback <= 1.0:
        raise ValueError("feedback must be in [0, 1]")
    if diffusion not in DIFFUSIONS:
        raise ValueError(f"diffusion must be one of {DIFFUSIONS}, got {diffusion!r}")
    right, below = (feedback, 0.0) if diffusion == "row" else (feedback / 2, feedback / 2)
    return _run_encoder(idx, np.shape(idx), levels, model, _NO_TRACE_BINS, _NO_TRACE_P0,
                        rdo=(x, rec, c_min, c_max, w, right, below, lookahead), ref=ref, state=state,
                        return_state=return_state)


def encode_configured(idx: np.ndarray, values: np.ndarray, reconstruction: np.ndarray, c_min: float, c_max: float,
                      levels: int, config, step: float, *, model=None, ref=None, state=None,
                      return_state: bool = False):
    """Entropy-code ``values`` as an :class:`~splitcodec.EncoderConfig` says (the one place its options become the
    kernel's arguments): the RDO weight λ·Δ²/2^15 (``step`` = Δ) divided by each plane's channel weight, the
    feedback gains, the look-ahead.  ``idx`` is overwritten with the chosen indices, as in :func:`encode_rdo`.
    ``model`` overrides the config's context model (a sequence's predicted frames use ``temporal``)."""
    weight = config.rdo_lambda * step ** 2 / (1 << COST_FRACTION_BITS)
    if config.channel_weights is not None:
        weight = weight / _plane_weights(config.weights, np.shape(idx))
    return encode_rdo(idx, values, reconstruction, c_min, c_max, weight, levels,
                      config.context_model_id if model is None else model, config.error_feedback,
                      config.rdo_lookahead, config.error_diffusion, ref=ref, state=state, return_state=return_state)


def _plane_weights(w: np.ndarray, shape) -> np.ndarray:
    """The channel weights repeated over the leading axes: one per coded plane."""
    if len(shape) < 3 or shape[-3] != w.size:
        raise QuantizerError(f"channel_weights has {w.size} values but the tensor of shape {tuple(shape)} has "
                             f"{shape[-3] if len(shape) >= 3 else 'no'} channels (the axis before the plane)")
    return np.tile(w, int(np.prod(shape[:-3], dtype=np.int64)))


def encode_indices(idx: np.ndarray, levels: int, model="spatial", *, check: bool = True, ref=None, state=None,
                   return_state: bool = False):
    """Entropy-code quantization indices (any shape; last two axes are the plane).

    ``check=False`` skips the range check (a pass over the indices) for indices a
    quantizer of ``levels`` levels just produced, which are in range by construction.
    ``ref``: the reference frame's indices, for the ``temporal`` model; ``state``: a (fast, slow)
    probability state to start from instead of a fresh one (copied); ``return_state``: return
    ``(bytes, final state)``, the state a next frame may carry on from.
    """
    return _run_encoder(idx, np.shape(idx), levels, model, _NO_TRACE_BINS, _NO_TRACE_P0, check, ref=ref,
                        state=state, return_state=return_state)


def trace_bins(idx: np.ndarray, levels: int, model="spatial") -> tuple[np.ndarray, np.ndarray]:
    """Every bin the encoder codes and the P(bin=0) (units of 2^-15) it uses."""
    flat = np.ascontiguousarray(idx, dtype=np.uint8).reshape(-1)
    total = int(np.minimum(flat.astype(np.int64) + 1, levels - 1).sum())
    bins = np.empty(total, dtype=np.uint8)
    p0 = np.empty(total, dtype=np.int32)
    _run_encoder(idx, np.shape(idx), levels, model, bins, p0)
    return bins, p0


def code_length_bits(bins: np.ndarray, p0: np.ndarray) -> float:
    """Ideal code length (bits) of ``bins`` under the probabilities ``p0``."""
    p = p0.astype(np.float64) / engine.PROB_ONE
    return float(-np.sum(np.where(bins == 0, np.log2(p), np.log2(1.0 - p))))


def decode_indices(buf, shape, levels: int, model, start: int = 0, end: int | None = None,
                   table: np.ndarray | None = None, *, indices: bool = True, ref=None, state=None,
                   return_state: bool = False):
    """Decode indices of ``shape`` from ``buf[start:end]``.

    Returns the uint8 indices; with a float32 reconstruction ``table`` the values
    are dequantized in the same pass and ``(indices, values)`` is returned, or
    ``values`` alone with ``indices=False`` (no index array is allocated then).
    A payload too short to hold the declared number of elements is rejected
    before anything of that size is allocated (``engine.max_bins``).  Raises a
    ``BitstreamError`` subclass when the payload is short, long or impossible.
    ``ref``/``state``: as for :func:`encode_indices`; ``return_state`` appends the final state to what is
    returned (a tuple).
    """
    model = context_model_id(model)
    data = np.frombuffer(buf, dtype=np.uint8)
    end = data.size if end is None else end
    if not 0 <= start <= end <= data.size:
        raise ValueError("payload bounds outside the buffer")
    planes, height, width = plane_geometry(shape)
    n = planes * height * width
    size = end - start
    if n > engine.max_bins(size):
        raise TruncatedPayloadError(
            f"payload truncated: {size} payload bytes can code at most {engine.max_bins(size)} bins, "
            f"fewer than the {n} elements the header declares"
        )
    if table is None and not indices:
        raise ValueError("nothing to return: give a table or ask for indices")
    out = np.empty(n if indices else 0, dtype=np.uint8)
    if table is None:
        tab, values = _NO_TABLE, _NO_TABLE
    else:
        tab = np.ascontiguousarray(table, dtype=np.float32)
        if tab.size != levels:
            raise ValueError(f"table must have {levels} entries")
        values = np.empty(n, dtype=np.float32)
    reference = _reference(model, ref, n)
    fast, slow = _start_state(model, levels, state)
    status, pos = kernels.decode(data, start, end, planes, height, width, levels, model,
                                 fast, slow, out, tab, values, reference)
    if status == engine.ERR_OVERRUN:
        raise TruncatedPayloadError(
            f"payload truncated: the arithmetic decoder needed more than the {size} payload bytes"
        )
    if status == engine.ERR_BAD_START:
        raise CorruptPayloadError("payload corrupt: its first 4 bytes cannot begin an arithmetic-coded stream")
    if status == engine.ERR_TRAILING:
        raise TrailingBytesError(
            f"{end - pos} trailing byte(s): the arithmetic decoder consumed {pos - start} of {size} payload bytes"
        )
    if status == engine.ERR_REFERENCE:  # _reference checked the size: unreachable unless the kernel changes
        raise ValueError("the temporal context model needs one reference index per element")
    shape = tuple(shape)
    result = (out.reshape(shape),) if table is None else (values.reshape(shape),) if not indices else (
        out.reshape(shape), values.reshape(shape))
    if return_state:
        return (*result, (fast, slow))
    return result[0] if len(result) == 1 else result
