"""The operational rate-distortion curve of the codec on given tensors, and operating-point search.

>>> import numpy as np, splitcodec as sc
>>> x = np.maximum(np.random.default_rng(0).normal(size=(16, 12, 12)), 0).astype(np.float32)
>>> pts = sc.rd.rd_points([x], levels=(2, 4), lambdas=(0.0, 0.2))
>>> front = sc.rd.rd_frontier(pts)
>>> all(a["bits_per_element"] < b["bits_per_element"] and a["mse"] > b["mse"] for a, b in zip(front, front[1:]))
True

Every point is a real encoding (header included) of every tensor: (N, clip, λ) → bits per element and
the mean squared error against the *unclipped* tensor (clipping costs distortion too).  λ is the codec's
``rdo_lambda``: 0 is the plain quantizer, larger values trade distortion for rate element by element.
"""

from __future__ import annotations

import numpy as np

from .codec import FeatureCodec, decode
from .errors import QuantizerError
from .quantization import UniformQuantizer, _as_float32, mse_optimal_clip

__all__ = ["rd_points", "rd_frontier", "best_point"]

DEFAULT_LEVELS = (2, 3, 4, 6, 8, 12, 16)
DEFAULT_LAMBDAS = (0.0, 0.05, 0.1, 0.2, 0.4, 0.8)
CLIP_SCALES = (0.8, 1.0, 1.25)


SIGNED_LOW_QUANTILES = (1e-3, 1e-2, 5e-2, 0.2)


def _clips(samples: np.ndarray, levels: int) -> list[tuple[float, float]]:
    """Clip candidates: c_min = 0 for non-negative samples, else a few low quantiles (a signed tensor's
    best lower end depends on N); c_max the MSE-optimal value above it, and 0.8× / 1.25× its width."""
    if float(samples.min()) >= 0:
        lows = [0.0]
    else:
        lows = sorted({float(np.float16(np.quantile(samples, q))) for q in SIGNED_LOW_QUANTILES})
    out = []
    for lo in lows:
        if not (samples > lo).any():
            continue
        best = mse_optimal_clip(samples, levels, lo)
        for s in CLIP_SCALES:
            hi = float(np.float16(lo + (best - lo) * s))
            if hi > lo and (lo, hi) not in out:
                out.append((lo, hi))
    return out


def rd_points(tensors, *, levels=DEFAULT_LEVELS, lambdas=DEFAULT_LAMBDAS, clips=None,
              context_model: str = "spatial") -> list[dict]:
    """One point per (N, clip, λ): ``{levels, clip, rdo_lambda, bits_per_element, mse}`` over all
    ``tensors``.  ``clips`` maps N to a list of (c_min, c_max); by default ``_clips``."""
    xs = [_as_float32(t) for t in tensors]
    if not xs:
        raise QuantizerError("no tensors")
    elements = sum(x.size for x in xs)
    sample = np.concatenate([x.reshape(-1) for x in xs])
    points = []
    for n in levels:
        for clip in (clips or {}).get(n) or _clips(sample, n):
            q = UniformQuantizer(clip[0], clip[1], n)
            for lam in lambdas:
                codec = FeatureCodec(q, context_model, rdo_lambda=lam)
                bits, sq = 0, 0.0
                for x in xs:
                    data = codec.encode(x)
                    bits += 8 * len(data)
                    sq += float(((decode(data).astype(np.float64) - x) ** 2).sum())
                points.append({"levels": n, "clip": [q.c_min, q.c_max], "rdo_lambda": float(lam),
                               "bits_per_element": bits / elements, "mse": sq / elements})
    return points


def rd_frontier(points) -> list[dict]:
    """The points no other point beats on both rate and distortion, by increasing rate."""
    front, best_mse = [], np.inf
    for p in sorted(points, key=lambda p: (p["bits_per_element"], p["mse"])):
        if p["mse"] < best_mse:
            front.append(p)
            best_mse = p["mse"]
    return front


def best_point(points, *, target_mse: float | None = None, max_bits: float | None = None) -> dict | None:
    """The fewest bits meeting ``target_mse``, or the least distortion within ``max_bits`` per element."""
    if (target_mse is None) == (max_bits is None):
        raise ValueError("give exactly one of target_mse and max_bits")
    if target_mse is not None:
        ok = [p for p in points if p["mse"] <= target_mse]
        return min(ok, key=lambda p: (p["bits_per_element"], p["mse"])) if ok else None
    ok = [p for p in points if p["bits_per_element"] <= max_bits]
    return min(ok, key=lambda p: (p["mse"], p["bits_per_element"])) if ok else None
