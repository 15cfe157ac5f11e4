"""Clipping and scalar quantization of activations (stage 1 of the codec).

Three quantizer families, all with one interface (``quantize`` → indices,
``dequantize`` → float32, ``reconstruction`` levels, ``thresholds``):

* :class:`UniformQuantizer` — eq. (1) of Cohen, Choi & Bajić (ICME 2020):
  clip to ``[c_min, c_max]``, ``q = round((x - c_min) / (c_max - c_min) * (N - 1))``
  with halfway cases rounded away from zero (computed in single precision as
  ``(x - c_min) * float32((N-1)/(c_max - c_min))``; see ``_quantize_uniform_kernel``).
* :func:`design_ecq` — entropy-constrained design, conventional (Algorithm 1)
  or modified for clipped activations (Algorithm 2).
* :func:`lloyd_max` — the MSE-optimal quantizer (ECQ with λ = 0).

The design algorithms minimise the Lagrangian ``J = D + λ R`` where ``D`` is the
mean squared error and ``R`` the mean rate in bits per sample, the rate term
*added*.  For a sample ``x`` the cost of index ``n`` is ``(x - x̂_n)² + λ r_n``
with ``r_n = -log2 p_n`` (Algorithm 1) or ``r_n = b_n``, the truncated-unary
codeword length (Algorithm 2).  Equating the costs of two neighbouring levels
gives the decision threshold

    t_n = (x̂_{n-1} + x̂_n) / 2 + λ (r_n - r_{n-1}) / (2 (x̂_n - x̂_{n-1}))

so with ``r = -log2 p`` the probability term enters as ``-(log2 p_n - log2 p_{n-1})``:
the paper prints Algorithm 1's threshold and Algorithm 2's assignment rule with
the opposite sign.  Thresholds here are computed as the lower envelope of the
cost parabolas, which stays correct when a level can never win (an empty bin):
its interval collapses to a point.
"""

from __future__ import annotations

import math
import numba
import numpy as np

from .binarization import codeword_lengths
from .errors import QuantizerError

__all__ = [
    "MAX_LEVELS",
    "Quantizer",
    "UniformQuantizer",
    "ScalarQuantizer",
    "ECQResult",
    "design_ecq",
    "lloyd_max",
    "sweep_lambda",
    "default_lambdas",
]

MAX_LEVELS = 256


def _check_levels(levels) -> int:
    if isinstance(levels, bool) or not isinstance(levels, (int, np.integer)):
        raise QuantizerError(f"levels must be an integer, got {levels!r}")
    n = int(levels)
    if not 2 <= n <= MAX_LEVELS:
        raise QuantizerError(f"levels must be in [2, {MAX_LEVELS}], got {n}")
    return n


def _check_clip(c_min, c_max) -> tuple[float, float]:
    with np.errstate(over="ignore"):  # a value beyond float32 becomes inf: refused just below
        lo, hi = np.float32(c_min), np.float32(c_max)
    if not (np.isfinite(lo) and np.isfinite(hi)):
        raise QuantizerError(f"clip range must be finite (in single precision), got [{c_min}, {c_max}]")
    if not lo < hi:
        raise QuantizerError(f"c_min must be < c_max, got c_min={c_min}, c_max={c_max}")
    return float(lo), float(hi)


def _as_float32(x) -> np.ndarray:
    """A contiguous float32 view/copy of ``x`` (numpy array, torch tensor or sequence)."""
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # torch.Tensor, without importing torch
        x = x.detach().cpu().numpy()
    a = np.ascontiguousarray(x, dtype=np.float32)
    return a


@numba.njit(cache=True, nogil=True)
def _quantize_uniform_kernel(x, c_min, c_max, scale, top, out):
    """Eq. (1) over a float32 array, in single precision; returns the number of NaNs.

    ``t = (clip(x) - c_min) * scale`` with ``scale = float32((N-1) / (c_max - c_min))``,
    then ``q = floor(t)``, plus one when ``t - q >= 0.5``: halfway cases round
    up, i.e. away from zero since ``t >= 0`` (``t - floor(t)`` is exact, unlike
    ``t + 0.5``).  Only IEEE single-precision operations without fused
    multiply-add, so every platform computes the same indices; the loop
    vectorises.
    """
    nans = 0
    for i in range(x.size):
        v = x[i]
        nans += v != v
        v = min(max(v, c_min), c_max)  # NaN compares false: it lands on c_min (and is reported)
        t = (v - c_min) * scale
        q = np.int32(t)  # t >= 0, so truncation is floor
        if t - np.float32(q) >= np.float32(0.5):
            q += 1
        out[i] = min(q, top)
    return nans


@numba.njit(cache=True, nogil=True)
def _quantize_thresholds_kernel(x, c_min, c_max, thresholds, out):
    """index = number of thresholds <= clip(x); returns the number of NaNs met."""
    nt = thresholds.size
    nans = 0
    for i in range(x.size):
        v = np.float64(x[i])
        if v != v:
            nans += 1
            out[i] = 0
            continue
        if v < c_min:
            v = c_min
        elif v > c_max:
            v = c_max
        lo = 0
        hi = nt
        while lo < hi:  # first threshold > v
            mid = (lo + hi) >> 1
            if thresholds[mid] <= v:
                lo = mid + 1
            else:
                hi = mid
        out[i] = lo
    return nans


def uniform_levels(c_min: float, c_max: float, levels: int) -> np.ndarray:
    """Reconstruction levels of the uniform quantizer exactly as docs/bitstream.md §1 states them:
    ``step = (c_max - c_min) / (N - 1)`` and ``c_min + k * step`` in double precision, each rounded
    to float32; index 0 is exactly ``c_min`` and index N - 1 exactly ``c_max``.  Works for any finite
    ``c_min < c_max`` (the decoder's case too), never raises."""
    lo, hi = float(c_min), float(c_max)
    step = (hi - lo) / (levels - 1)
    rec = (lo + np.arange(levels, dtype=np.float64) * step).astype(np.float32)
    rec[0], rec[-1] = lo, hi
    return rec


def _check_increasing(rec: np.ndarray) -> None:
    if not np.all(rec[1:] > rec[:-1]):  # IEEE comparison: -0.0 == +0.0, so they cannot both appear
        raise QuantizerError(
            f"reconstruction levels must be strictly increasing, got {np.array2string(rec, precision=6)}"
        )


class Quantizer:
    """Common interface: ``quantize`` (clip + map to indices) and ``dequantize``."""

    levels: int
    c_min: float
    c_max: float
    reconstruction: np.ndarray  # (N,) float32
    thresholds: np.ndarray  # (N-1,) float64

    kind: str = "abstract"

    def quantize(self, x) -> np.ndarray:
        """Clip ``x`` to ``[c_min, c_max]`` and return indices (uint8, same shape).

        ``x`` may be a numpy array or torch tensor of any float dtype; NaN is an
        error, ±inf clip to the range ends.
        """
        a = _as_float32(x)
        out = np.empty(a.shape, dtype=np.uint8)
        nans = self._quantize_into(a.reshape(-1), out.reshape(-1))
        if nans:
            raise QuantizerError(f"input contains {nans} NaN value(s); NaN cannot be quantized")
        return out

    def _quantize_into(self, flat: np.ndarray, out: np.ndarray) -> int:
        raise NotImplementedError

    def dequantize(self, indices) -> np.ndarray:
        """Map indices back to reconstruction levels (float32, same shape)."""
        idx = np.asarray(indices)
        if idx.dtype.kind not in "ui":
            raise QuantizerError(f"indices must be integers, got dtype {idx.dtype}")
        if idx.size and (int(idx.min()) < 0 or int(idx.max()) >= self.levels):
            raise QuantizerError(
                f"indices must be in [0, {self.levels - 1}], got range "
                f"[{int(idx.min())}, {int(idx.max())}]"
            )
        return self.reconstruction[idx]

    def __call__(self, x) -> np.ndarray:
        """Quantize then dequantize: what the cloud tail will see."""
        return self.dequantize(self.quantize(x))

    def mse(self, x) -> float:
        """Mean squared error between ``x`` and its reconstruction."""
        a = _as_float32(x).astype(np.float64)
        return float(np.mean((a - self(x).astype(np.float64)) ** 2))

    def __eq__(self, other) -> bool:
        """Same mapping: kind, levels, clip range, reconstruction levels and thresholds."""
        return (
            isinstance(other, Quantizer)
            and self.kind == other.kind
            and self.levels == other.levels
            and np.array_equal(self.thresholds, other.thresholds)
            and self.c_min == other.c_min
            and self.c_max == other.c_max
            and np.array_equal(self.reconstruction, other.reconstruction)
        )

    __hash__ = None  # mutable-looking value object


class UniformQuantizer(Quantizer):
    """Eq. (1): uniform N-level quantizer on the clip range ``[c_min, c_max]``.

    ``c_min``/``c_max`` are kept in single precision (they travel in the
    bitstream header: as two half floats when both are exact in half precision,
    else as two single floats).

    >>> q = UniformQuantizer(0.0, 3.0, 4)
    >>> q.quantize(np.array([-1.0, 0.5, 1.5, 2.9, 9.0])).tolist()
    [0, 1, 2, 3, 3]
    >>> q.dequantize(np.array([0, 1, 2, 3], dtype=np.uint8)).tolist()
    [0.0, 1.0, 2.0, 3.0]
    """

    kind = "uniform"

    def __init__(self, c_min: float, c_max: float, levels: int):
        self.levels = _check_levels(levels)
        self.c_min, self.c_max = _check_clip(c_min, c_max)
        step = (self.c_max - self.c_min) / (self.levels - 1)
        with np.errstate(over="ignore"):
            width = np.float32(self.c_max) - np.float32(self.c_min)
            self._scale = np.float32((self.levels - 1) / (self.c_max - self.c_min))
        # eq. (1) runs in float32: the clip width and the scale must be finite there, and the scale
        # nonzero, or indices would silently come out wrong
        if not (np.isfinite(width) and np.isfinite(self._scale) and self._scale > 0):
            raise QuantizerError(
                f"clip range [{self.c_min}, {self.c_max}] with N={self.levels} cannot be quantized in single "
                "precision: the range or its scale (N-1)/(c_max-c_min) overflows float32"
            )
        self.reconstruction = uniform_levels(self.c_min, self.c_max, self.levels)
        self.thresholds = self.c_min + (np.arange(1, self.levels) - 0.5) * step

    @property
    def step(self) -> float:
        return (self.c_max - self.c_min) / (self.levels - 1)

    def _quantize_into(self, flat, out) -> int:
        return _quantize_uniform_kernel(flat, np.float32(self.c_min), np.float32(self.c_max),
                                        self._scale, np.int32(self.levels - 1), out)

    def zero_level(self) -> "UniformQuantizer":
        """A mid-tread version: the same N, the range shifted by at most half a step so that 0 is exactly a
        reconstruction level (the step rounded to a few significant bits so that it is exact; the range's ends
        move by under 1/64 step more).  Values near 0 then reconstruct to 0 instead of to the levels either side
        of it: on split tensors of video frames that lowers the mean KL at the same bytes, which temporal
        (predicted-frame) RDO turns into saved bytes at a better rate than intra RDO does (measured in
        ``python -m eval video``, docs/results.md; docs/codec.md).  The ends are exact half floats where
        that is possible within those bounds (a 16-byte header).

        >>> UniformQuantizer(-22.59375, 13.296875, 8).zero_level()
        UniformQuantizer(c_min=-20.5, c_max=15.375, levels=8)
        >>> float(UniformQuantizer(-20.5, 15.375, 8).dequantize(np.array([4], np.uint8))[0])
        0.0
        >>> UniformQuantizer(0.0, 6.0, 4).zero_level()   # already one: unchanged
        UniformQuantizer(c_min=0.0, c_max=6.0, levels=4)
        """
        from .bitstream import _half_exact  # the header's own rule for writing the range as half floats

        n1, step = self.levels - 1, self.step
        k = min(max(round(-self.c_min / step), 0), n1)  # the level nearest 0 becomes 0
        if abs(self.c_min + k * step) > step / 2:
            raise QuantizerError(f"0 is more than half a step outside [{self.c_min}, {self.c_max}]: "
                                 "no shift of at most half a step puts a level there")
        if uniform_levels(self.c_min, self.c_max, self.levels)[k] == 0.0:
            return self

        def ends(bits):
            """The range for the step rounded to ``bits`` significant bits: with k < 256 its ends and every
            level c_min + j·step are exact in single precision (at most 22 bits), level k exactly 0."""
            unit = math.ldexp(1.0, math.floor(math.log2(step)) - bits + 1)
            s = round(step / unit) * unit
            return s, -k * s + 0.0, (n1 - k) * s  # + 0.0: never -0.0

        for bits in range(1, 14):  # the fewest bits whose ends are half floats, the levels moving < 1/64 step
            s, lo, hi = ends(bits)
            if abs(s - step) * n1 <= step / 64 and _half_exact((lo, hi)):
                return UniformQuantizer(lo, hi, self.levels)
        return UniformQuantizer(*ends(14)[1:], self.levels)  # within 255 / 2^14 < 1/64 step: always close

    def __repr__(self) -> str:
        return f"UniformQuantizer(c_min={self.c_min!r}, c_max={self.c_max!r}, levels={self.levels})"


class ScalarQuantizer(Quantizer):
    """A non-uniform quantizer given by its levels and decision thresholds.

    ``quantize`` clips to ``[c_min, c_max]`` and returns the number of thresholds
    ``<= x`` (a value exactly on a threshold goes to the upper level).
    """

    kind = "table"

    def __init__(self, reconstruction, thresholds, c_min: float, c_max: float):
        rec = np.asarray(reconstruction, dtype=np.float32).reshape(-1)
        thr = np.asarray(thresholds, dtype=np.float64).reshape(-1)
        self.levels = _check_levels(rec.size)
        if thr.size != rec.size - 1:
            raise QuantizerError(f"need {rec.size - 1} thresholds for {rec.size} levels, got {thr.size}")
        if not np.all(np.isfinite(rec)):
            raise QuantizerError("reconstruction levels must be finite")
        _check_increasing(rec)
        if np.any(np.isnan(thr)) or np.any(np.diff(thr) < 0):
            raise QuantizerError("thresholds must be non-decreasing and not NaN")
        self.c_min, self.c_max = _check_clip(c_min, c_max)
        self.reconstruction = rec
        self.thresholds = thr

    def _quantize_into(self, flat, out) -> int:
        return _quantize_thresholds_kernel(flat, self.c_min, self.c_max, self.thresholds, out)

    @classmethod
    def from_levels(cls, reconstruction, c_min=None, c_max=None) -> "ScalarQuantizer":
        """Nearest-level quantizer (midpoint thresholds) for strictly increasing levels
        (index k reconstructs to ``reconstruction[k]``; nothing is reordered)."""
        rec = np.asarray(reconstruction, dtype=np.float32).reshape(-1)
        if rec.size < 2:
            raise QuantizerError(f"need at least 2 levels, got {rec.size}")
        lo = float(rec[0]) if c_min is None else c_min
        hi = float(rec[-1]) if c_max is None else c_max
        thr = (rec[:-1].astype(np.float64) + rec[1:].astype(np.float64)) / 2
        return cls(rec, thr, lo, hi)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(levels={self.levels}, c_min={self.c_min!r}, c_max={self.c_max!r}, "
            f"reconstruction={np.array2string(self.reconstruction, precision=4)})"
        )


class ECQResult(ScalarQuantizer):
    """A designed quantizer plus how it was designed: ``method``, ``lam``, the
    ``rates`` r_n used in the cost, final ``distortion`` (MSE) and ``rate``
    (bits/sample), ``cost_history`` (one J per iteration) and bin ``probabilities``."""

    def __init__(self, reconstruction, thresholds, c_min, c_max, *, method, lam, rates,
                 distortion, rate, cost_history, probabilities):
        ScalarQuantizer.__init__(self, reconstruction, thresholds, c_min, c_max)
        self.method = method
        self.lam = float(lam)
        self.rates = np.asarray(rates, dtype=np.float64)
        self.distortion = float(distortion)
        self.rate = float(rate)
        self.cost_history = list(cost_history)
        self.probabilities = np.asarray(probabilities, dtype=np.float64)

    @property
    def cost(self) -> float:
        return self.distortion + self.lam * self.rate


def envelope_thresholds(levels: np.ndarray, rates: np.ndarray, lam: float) -> np.ndarray:
    """Decision thresholds of ``argmin_n (x - levels[n])² + lam * rates[n]``.

    ``levels`` ascending; ``rates[n] = inf`` marks a level that is never chosen.
    Returns ``N - 1`` non-decreasing thresholds such that the number of
    thresholds ``<= x`` is the winning index (ties go to the higher index).
    A level that never wins gets an empty interval.  Works over the N levels
    only (O(N)), never over samples.
    """
    lv = np.asarray(levels, dtype=np.float64)
    r = np.asarray(rates, dtype=np.float64)
    n = lv.size
    # cost_n(x) - x² is the line  -2 l_n x + c_n  with  c_n = l_n² + lam r_n  (rates unused at lam = 0).
    c = lv * lv + (lam * r if lam > 0 else 0.0)
    hull: list[int] = []  # indices of the lines on the lower envelope, left to right
    starts: list[float] = []  # x from which each hull line wins
    for j in range(n):
        if lam > 0 and not np.isfinite(r[j]):
            continue  # a level that can never be chosen
        x = -np.inf
        while hull:
            i = hull[-1]
            if lv[j] == lv[i]:
                x = -np.inf if c[j] < c[i] else np.inf
            else:
                x = (c[j] - c[i]) / (2.0 * (lv[j] - lv[i]))  # where j starts beating i
            if x <= starts[-1]:
                hull.pop()  # i wins nowhere
                starts.pop()
                x = -np.inf
                continue
            break
        if x == np.inf:
            continue  # j wins nowhere
        hull.append(j)
        starts.append(x)
    thr = np.empty(n - 1, dtype=np.float64)
    # index boundary k (between k-1 and k) = start of the first hull line with index >= k
    pos = 0
    for k in range(1, n):
        while pos < len(hull) and hull[pos] < k:
            pos += 1
        thr[k - 1] = starts[pos] if pos < len(hull) else np.inf
    return thr


class _SortedSamples:
    """Sorted samples with prefix sums: bin statistics for any thresholds in O(N log M)."""

    def __init__(self, x: np.ndarray):
        xs = np.sort(x.astype(np.float64, copy=False).reshape(-1))
        self.x = xs
        self.m = xs.size
        self.cs = np.concatenate(([0.0], np.cumsum(xs)))
        self.cs2 = np.concatenate(([0.0], np.cumsum(xs * xs)))

    def bins(self, thresholds: np.ndarray):
        b = np.concatenate(([0], np.searchsorted(self.x, thresholds, side="left"), [self.m]))
        cnt = np.diff(b).astype(np.float64)
        s = np.diff(self.cs[b])
        s2 = np.diff(self.cs2[b])
        return cnt, s, s2

    @staticmethod
    def distortion(cnt, s, s2, levels) -> float:
        d = s2 - 2.0 * levels * s + cnt * levels * levels
        return float(np.maximum(d, 0.0).sum())


def _fill_empty(levels, placed, thresholds, lo, hi):
    """Deterministic level for each bin not ``placed`` (empty): the point its
    interval collapsed to, kept between the neighbouring levels (so levels stay sorted)."""
    n = levels.size
    out = levels.copy()
    for k in range(n):
        if placed[k]:
            continue
        left = out[k - 1] if k > 0 else lo
        right = next((out[j] for j in range(k + 1, n) if placed[j]), hi)
        t = thresholds[k - 1] if k > 0 else thresholds[0] if n > 1 else lo
        if not np.isfinite(t):
            t = left if t < 0 else right
        out[k] = min(max(t, left), right)
    return out


def _strictly_increasing(rec: np.ndarray) -> np.ndarray:
    """Move levels that coincide in float32 (empty bins collapsed onto a neighbour) apart by
    the fewest float32 steps, keeping the first and last level, so every table the writer
    emits is strictly increasing (docs/bitstream.md §1).  Non-coinciding levels are untouched."""
    out = rec.copy()
    for k in range(1, out.size - 1):
        if out[k] <= out[k - 1]:
            out[k] = np.nextafter(out[k - 1], np.float32(np.inf))
    for k in range(out.size - 2, 0, -1):
        if out[k] >= out[k + 1]:
            out[k] = np.nextafter(out[k + 1], np.float32(-np.inf))
    _check_increasing(out)
    return out


def design_ecq(
    samples,
    levels: int,
    lam: float,
    c_min: float | None = None,
    c_max: float | None = None,
    method: str = "modified",
    *,
    tol: float = 1e-7,
    max_iter: int = 300,
    init_levels=None,
) -> ECQResult:
    """Design an entropy-constrained scalar quantizer by minimising ``J = D + λ R``.

    ``method="conventional"`` is Algorithm 1 (every level a centroid, rate
    ``-log2 p_n``); ``method="modified"`` is Algorithm 2 (samples clipped first,
    levels 0 and N-1 pinned to ``c_min``/``c_max``, interior levels centroids,
    rate ``b_n`` = truncated-unary codeword length of index n).  ``λ`` is in
    units of squared activation per bit.  Iterates until the relative cost
    reduction falls below ``tol``.  Samples are sorted once; each iteration then
    costs O(N log M), so 10^7 samples design in seconds.

    Empty bins: under Algorithm 1 a bin with no samples has p = 0, infinite
    rate, and stays empty; under Algorithm 2 (finite rates) it may be revived.
    Its level is the point its interval collapsed to.
    """
    n, lam, data, lo, hi = _design_inputs(samples, levels, lam, c_min, c_max, method)
    lv, rates = _initial_levels(n, lo, hi, method, init_levels)
    lv, rates, history = _iterate_design(data, lv, rates, lam, lo, hi, method, tol, max_iter)
    return _finish_design(data, lv, rates, lam, lo, hi, method, history)


def _design_inputs(samples, levels, lam, c_min, c_max, method):
    """Checked inputs: (N, λ, sorted clipped samples, c_min, c_max)."""
    n = _check_levels(levels)
    if method not in ("conventional", "modified"):
        raise QuantizerError(f"method must be 'conventional' or 'modified', got {method!r}")
    lam = float(lam)
    if not (lam >= 0 and np.isfinite(lam)):
        raise QuantizerError(f"lam must be a finite number >= 0, got {lam}")
    x = _as_float32(samples).reshape(-1)
    if x.size == 0:
        raise QuantizerError("no samples to design a quantizer on")
    if np.isnan(x).any():
        raise QuantizerError("samples contain NaN")
    if method == "modified" and (c_min is None or c_max is None):
        raise QuantizerError("the modified design (Algorithm 2) needs c_min and c_max")
    if c_min is None:
        c_min = float(x[np.isfinite(x)].min()) if np.isfinite(x).any() else 0.0
    if c_max is None:
        c_max = float(x[np.isfinite(x)].max()) if np.isfinite(x).any() else 1.0
        if c_max <= c_min:
            c_max = c_min + 1.0
    lo, hi = _check_clip(c_min, c_max)
    return n, lam, _SortedSamples(np.clip(x, lo, hi)), lo, hi


def _initial_levels(n, lo, hi, method, init_levels):
    """Starting levels (uniform unless given) and rates (codeword lengths or equiprobable)."""
    if init_levels is None:
        lv = np.linspace(lo, hi, n)
    else:
        lv = np.sort(np.asarray(init_levels, dtype=np.float64).reshape(-1))
        if lv.size != n:
            raise QuantizerError(f"init_levels must have {n} values")
    if method == "modified":
        lv[0], lv[-1] = lo, hi
        return lv, codeword_lengths(n).astype(np.float64)
    return lv, np.full(n, math.log2(n))


def _iterate_design(data, lv, rates, lam, lo, hi, method, tol, max_iter):
    """The Lloyd-style iteration: thresholds from the cost envelope, then centroids (and, for
    Algorithm 1, rates from the bin probabilities), until the cost stops falling."""
    m = float(data.m)
    history: list[float] = []
    for _ in range(max_iter):
        thr = envelope_thresholds(lv, rates, lam)
        cnt, s, s2 = data.bins(thr)
        prob = cnt / m
        nonempty = cnt > 0
        new = lv.copy()
        new[nonempty] = s[nonempty] / cnt[nonempty]
        placed = nonempty.copy()
        if method == "modified":
            new[0], new[-1] = lo, hi
            placed[0] = placed[-1] = True  # pinned, whatever their counts
        new = _fill_empty(new, placed, thr, lo, hi)
        if method == "conventional":
            with np.errstate(divide="ignore"):
                rates = np.where(nonempty, -np.log2(np.where(nonempty, prob, 1.0)), np.inf)
        lv = new
        dist = _SortedSamples.distortion(cnt, s, s2, lv) / m
        cost = dist + lam * float(np.sum(prob[nonempty] * rates[nonempty]))
        history.append(cost)
        if len(history) > 1 and history[-2] - cost <= tol * max(abs(history[-2]), 1e-300):
            break
    return lv, rates, history


def _finish_design(data, lv, rates, lam, lo, hi, method, history) -> ECQResult:
    """Float32 levels (strictly increasing, ends pinned for Algorithm 2), their thresholds and statistics."""
    m = float(data.m)
    rec32 = lv.astype(np.float32)
    if method == "modified":
        rec32[0], rec32[-1] = np.float32(lo), np.float32(hi)
    rec32 = _strictly_increasing(rec32)
    thr = envelope_thresholds(rec32.astype(np.float64), rates, lam)
    cnt, s, s2 = data.bins(thr)
    prob = cnt / m
    dist = _SortedSamples.distortion(cnt, s, s2, rec32.astype(np.float64)) / m
    used = cnt > 0
    rate = float(np.sum(prob[used] * rates[used]))
    return ECQResult(
        rec32, thr, lo, hi, method=method, lam=lam, rates=rates, distortion=dist,
        rate=rate, cost_history=history, probabilities=prob,
    )


def lloyd_max(samples, levels: int, c_min: float | None = None, c_max: float | None = None,
              *, tol: float = 1e-7, max_iter: int = 300) -> ECQResult:
    """The Lloyd-Max (minimum-MSE) quantizer on the clipped samples: ECQ with λ = 0."""
    return design_ecq(samples, levels, 0.0, c_min, c_max, method="conventional",
                      tol=tol, max_iter=max_iter)


def default_lambdas(samples, c_min: float, c_max: float, count: int = 8) -> np.ndarray:
    """A geometric λ grid scaled to the clipped samples' variance (units: D per bit)."""
    x = np.clip(_as_float32(samples).reshape(-1).astype(np.float64), c_min, c_max)
    var = float(x.var()) or (c_max - c_min) ** 2 / 12
    return var * np.geomspace(1e-3, 1.0, count)


def sweep_lambda(samples, levels: int, c_min: float, c_max: float, lams=None,
                 method: str = "modified", **kw) -> list[ECQResult]:
    """Design one quantizer per λ (a family covering a range of rates), sorted by rate."""
    if lams is None:
        lams = default_lambdas(samples, c_min, c_max)
    x = _as_float32(samples)
    out = [design_ecq(x, levels, lam, c_min, c_max, method=method, **kw) for lam in lams]
    return sorted(out, key=lambda q: q.rate)
