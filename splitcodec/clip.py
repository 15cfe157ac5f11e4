"""The clip range [c_min, c_max]: the one rule for choosing it from activations, its candidates in searches,
and the one grammar for writing it on a command line.

* ``c_min``: 0 for non-negative activations (after a ReLU), else a low quantile of the samples
  (``SIGNED_LOW_QUANTILES[0]``; searches try all of ``SIGNED_LOW_QUANTILES``), rounded to half precision.
* ``c_max``: the MSE-optimal value above ``c_min`` (:func:`mse_optimal_clip`, the fast support-region choice);
  searches add high quantiles of the samples above ``c_min`` (:func:`clip_candidates`).
* On a command line a range is ``C_MAX`` (``C_MIN`` = 0) or ``C_MIN:C_MAX``; a list of ranges is
  comma-separated (:func:`parse_clip_range`, :func:`parse_clip_list`).

Every value a rule returns is half-float exact, so the stream header stays at its compact size.

>>> import numpy as np
>>> x = np.random.default_rng(0).normal(size=4000).astype(np.float32)
>>> lo, hi = calibrated_clip(x, 8)
>>> lo == low_clip(x) < 0 < hi, parse_clip_range("-1.5:4"), parse_clip_list("4,0.5:6")
(True, (-1.5, 4.0), [(0.0, 4.0), (0.5, 6.0)])
"""

from __future__ import annotations

import numpy as np

from .errors import QuantizerError
from .quantization import UniformQuantizer, _as_float32

__all__ = ["SIGNED_LOW_QUANTILES", "HIGH_QUANTILES", "mse_optimal_clip", "low_clip", "low_clips", "calibrated_clip",
           "clip_candidates", "parse_clip_range", "parse_clip_list"]

SIGNED_LOW_QUANTILES = (1e-3, 1e-2, 5e-2, 0.2)  # c_min of a signed tensor: the first by default, all in searches
HIGH_QUANTILES = (0.99, 0.995, 0.999, 0.9999)  # c_max candidates beside the MSE-optimal one


def _half(v) -> float:
    return float(np.float16(v))


def mse_optimal_clip(samples, levels: int, c_min: float = 0.0, *, candidates: int = 64,
                     max_samples: int = 1 << 18, seed: int = 0, half_exact: bool = True) -> float:
    """The ``c_max`` minimising the uniform quantizer's MSE on ``samples`` (the
    fast support-region choice).  Candidates are quantiles of the samples above
    ``c_min``; with ``half_exact`` the result is rounded to half precision so the
    bitstream header stays at its compact size.
    """
    x = _as_float32(samples).reshape(-1)
    x = x[np.isfinite(x)]
    if x.size > max_samples:
        x = np.random.default_rng(seed).choice(x, max_samples, replace=False)
    above = x[x > c_min]
    if above.size == 0:
        raise QuantizerError("no samples above c_min: cannot choose a clip range")
    qs = np.unique(np.quantile(above, np.linspace(0.3, 1.0, candidates)))
    best, best_mse = None, np.inf
    for c in qs:
        c = float(np.float16(c)) if half_exact else float(c)
        if not c > c_min:
            continue
        q = UniformQuantizer(c_min, c, levels)
        err = float(np.mean((x.astype(np.float64) - q(x)) ** 2))
        if err < best_mse:
            best, best_mse = c, err
    if best is None:
        raise QuantizerError("could not find a clip range above c_min")
    return best


def low_clip(samples) -> float:
    """c_min: 0 for non-negative samples, else their ``SIGNED_LOW_QUANTILES[0]`` quantile (half-float exact)."""
    x = np.asarray(samples).reshape(-1)
    return 0.0 if float(x.min()) >= 0 else _half(np.quantile(x, SIGNED_LOW_QUANTILES[0]))


def low_clips(samples) -> list[float]:
    """c_min candidates for a search: 0 for non-negative samples, else each of ``SIGNED_LOW_QUANTILES``
    (a signed tensor's best lower end depends on N)."""
    x = np.asarray(samples).reshape(-1)
    if float(x.min()) >= 0:
        return [0.0]
    return sorted({_half(np.quantile(x, q)) for q in SIGNED_LOW_QUANTILES})


def calibrated_clip(samples, levels: int) -> tuple[float, float]:
    """The clip range for N levels: (``low_clip``, the MSE-optimal c_max above it)."""
    x = np.asarray(samples).reshape(-1)
    lo = low_clip(x)
    return lo, mse_optimal_clip(x, levels, lo)


def clip_candidates(samples, levels: int, c_min: float = 0.0) -> list[float]:
    """c_max candidates: the MSE-optimal value and ``HIGH_QUANTILES`` of the samples above ``c_min``
    (half-float exact, ascending, each above ``c_min``)."""
    flat = np.asarray(samples).reshape(-1)
    above = flat[flat > c_min]
    if above.size == 0:
        return []
    qs = np.quantile(above, HIGH_QUANTILES)
    return sorted({_half(c) for c in [mse_optimal_clip(flat, levels, c_min), *qs] if _half(c) > c_min})


def parse_clip_range(text: str) -> tuple[float, float]:
    """``C_MAX`` (``C_MIN`` = 0) or ``C_MIN:C_MAX`` → (c_min, c_max); ValueError naming the grammar otherwise."""
    lo, sep, hi = str(text).strip().partition(":")
    if not sep:
        lo, hi = "0", lo
    try:
        pair = (float(lo), float(hi))
    except ValueError:
        raise ValueError(f"clip range {text!r}: expected C_MAX or C_MIN:C_MAX (numbers)") from None
    if not (np.isfinite(pair).all() and pair[0] < pair[1]):
        raise ValueError(f"clip range {text!r}: need finite C_MIN < C_MAX")
    return pair


def parse_clip_list(text: str) -> list[tuple[float, float]]:
    """Comma-separated clip ranges (each as :func:`parse_clip_range` reads it)."""
    parts = [p for p in str(text).split(",") if p.strip()]
    if not parts:
        raise ValueError("expected at least one clip range: C_MAX or C_MIN:C_MAX, comma-separated")
    return [parse_clip_range(p) for p in parts]
