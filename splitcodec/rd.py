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

Two quantizer kinds are searched.  ``uniform`` is eq. 1 on [c_min, c_max].  ``refined`` starts from it and
moves every reconstruction level to the mean of the elements the RDO encoder assigned to it, then encodes
again with the same rate weight (:func:`refine_levels`): entropy-constrained design with the real coder
in the loop, where the paper's ECQ uses a static rate per index.  A refined point is a table quantizer, so
its streams are ordinary ones; :func:`point_codec` rebuilds the codec of any point.
"""

from __future__ import annotations

import numpy as np

from .codec import FeatureCodec, decode
from .errors import QuantizerError
from .clip import low_clips, mse_optimal_clip
from .pareto import pareto
from .quantization import Quantizer, ScalarQuantizer, UniformQuantizer, _as_float32

__all__ = ["rd_points", "rd_frontier", "best_point", "refine_levels", "point_codec", "clip_grid"]

DEFAULT_LEVELS = (2, 3, 4, 6, 8, 12, 16)
DEFAULT_LAMBDAS = (0.0, 0.05, 0.1, 0.2, 0.4, 0.8)
DEFAULT_REFINE = 3
CLIP_SCALES = (0.8, 1.0, 1.25)


def clip_grid(samples: np.ndarray, levels: int) -> list[tuple[float, float]]:
    """Clip candidates of the search: each c_min of ``clip.low_clips``; c_max the MSE-optimal value above it,
    and 0.8× / 1.25× its width (half-float exact)."""
    out = []
    for lo in low_clips(samples):
        if not (samples > lo).any():
            continue
        best = mse_optimal_clip(samples, levels, lo)
        for s in CLIP_SCALES:
            hi = float(np.float16(lo + (best - lo) * s))
            if hi > lo and (lo, hi) not in out:
                out.append((lo, hi))
    return out


def _spacing(q: Quantizer) -> float:
    rec = q.reconstruction.astype(np.float64)
    return float((rec[-1] - rec[0]) / (len(rec) - 1))


def _measure(codec: FeatureCodec, xs) -> tuple[int, float, list[np.ndarray]]:
    """Encode every tensor: total bits, total squared error of the decoded stream against the unclipped
    tensor, and the indices the encoder chose."""
    bits, sq, chosen = 0, 0.0, []
    for x in xs:
        data, idx = codec.encode(x, return_indices=True)
        bits += 8 * len(data)
        sq += float(((decode(data).astype(np.float64) - x) ** 2).sum())
        chosen.append(idx)
    return bits, sq, chosen


def refine_levels(quantizer: Quantizer, tensors, rdo_lambda: float = 0.0, *, iterations: int = DEFAULT_REFINE,
                  context_model: str = "spatial", lookahead: bool = False) -> list[dict]:
    """Lloyd iterations with the real encoder in the loop.

    Each iteration encodes ``tensors`` with the current levels and RDO weight, then moves every level to
    the mean of the (unclipped) elements the encoder assigned to it.  The weight of a bit in squared
    error, ``rdo_lambda · Δ²``, stays that of the starting quantizer, so the λ recorded for a refined table
    (whose mean spacing Δ moves) is the one that reproduces it.  Returns one entry per refined quantizer:
    ``{quantizer, rdo_lambda, bits_per_element, mse}``; it stops early when a level is never chosen or the
    levels would stop being strictly increasing in float32.  ``lookahead`` is the codec's ``rdo_lookahead``
    (used when ``rdo_lambda`` > 0).
    """
    xs = [_as_float32(t) for t in tensors]
    if not xs:
        raise QuantizerError("no tensors")
    ahead = bool(lookahead and rdo_lambda > 0)
    _, _, chosen = _measure(FeatureCodec(quantizer, context_model, rdo_lambda=rdo_lambda, rdo_lookahead=ahead), xs)
    flat = np.concatenate([x.reshape(-1) for x in xs]).astype(np.float64)
    return _refine(quantizer, xs, flat, rdo_lambda, chosen, iterations, context_model, ahead)


def _refine(quantizer: Quantizer, xs, flat, rdo_lambda: float, chosen, iterations: int, context_model, ahead: bool):
    """:func:`refine_levels` from the indices the encoder chose with the starting quantizer (``flat``: every
    element of ``xs`` in float64, in order)."""
    elements = flat.size
    weight = float(rdo_lambda) * _spacing(quantizer) ** 2
    q, out = quantizer, []
    for _ in range(iterations):
        assigned = np.concatenate([c.reshape(-1) for c in chosen])
        count = np.bincount(assigned, minlength=q.levels)
        if (count == 0).any():
            break
        rec = (np.bincount(assigned, weights=flat, minlength=q.levels) / count).astype(np.float32)
        if not (np.all(np.isfinite(rec)) and np.all(rec[1:] > rec[:-1])):
            break
        q = ScalarQuantizer.from_levels(rec)
        lam = weight / _spacing(q) ** 2
        bits, sq, chosen = _measure(FeatureCodec(q, context_model, rdo_lambda=lam, rdo_lookahead=ahead), xs)
        out.append({"quantizer": q, "rdo_lambda": lam, "bits_per_element": bits / elements, "mse": sq / elements})
    return out


def rd_points(tensors, *, levels=DEFAULT_LEVELS, lambdas=DEFAULT_LAMBDAS, clips=None,
              context_model: str = "spatial", refine: int = DEFAULT_REFINE, lookahead: bool = True) -> list[dict]:
    """One point per (N, clip, λ) and, with ``refine`` > 0, one per refinement iteration of each:
    ``{kind, levels, clip, rdo_lambda, rdo_lookahead, bits_per_element, mse}`` over all ``tensors`` (a
    ``refined`` point adds ``reconstruction``, its table, and ``iteration``).  ``clips`` maps N to a list
    of (c_min, c_max); by default ``clip_grid``.  ``lookahead``: the RDO points (λ > 0) look one element
    ahead (docs/codec.md: it saves bits below about 1 bit/element and costs encoder time)."""
    xs = [_as_float32(t) for t in tensors]
    if not xs:
        raise QuantizerError("no tensors")
    elements = sum(x.size for x in xs)
    sample = np.concatenate([x.reshape(-1) for x in xs])
    flat = sample.astype(np.float64)
    points = []
    for n in levels:
        for clip in (clips or {}).get(n) or clip_grid(sample, n):
            q = UniformQuantizer(clip[0], clip[1], n)
            for lam in lambdas:
                ahead = bool(lookahead and lam > 0)
                bits, sq, chosen = _measure(FeatureCodec(q, context_model, rdo_lambda=lam, rdo_lookahead=ahead), xs)
                points.append({"kind": "uniform", "levels": n, "clip": [q.c_min, q.c_max], "rdo_lambda": float(lam),
                               "rdo_lookahead": ahead, "bits_per_element": bits / elements, "mse": sq / elements})
                # refinement starts from the indices just chosen: the uniform point is not encoded twice
                for it, r in enumerate(_refine(q, xs, flat, lam, chosen, refine, context_model, ahead), 1):
                    t = r["quantizer"]
                    points.append({"kind": "refined", "levels": n, "clip": [t.c_min, t.c_max],
                                   "rdo_lambda": r["rdo_lambda"], "rdo_lookahead": ahead,
                                   "bits_per_element": r["bits_per_element"],
                                   "mse": r["mse"], "reconstruction": [float(v) for v in t.reconstruction],
                                   "iteration": it, "start": {"clip": [q.c_min, q.c_max], "rdo_lambda": float(lam)}})
    return points


def point_codec(point: dict, context_model: str = "spatial") -> FeatureCodec:
    """The codec that encodes like ``point`` (an entry of :func:`rd_points`)."""
    if point.get("kind", "uniform") == "uniform":
        q = UniformQuantizer(point["clip"][0], point["clip"][1], point["levels"])
    else:
        q = ScalarQuantizer.from_levels(point["reconstruction"])
    return FeatureCodec(q, context_model, rdo_lambda=point["rdo_lambda"],
                        rdo_lookahead=bool(point.get("rdo_lookahead", False)))


def rd_frontier(points) -> list[dict]:
    """The points no other point beats on both rate and distortion, by increasing rate."""
    return pareto(points, "bits_per_element", "mse")


def best_point(points, *, target_mse: float | None = None, max_bits: float | None = None) -> dict | None:
    """The fewest bits meeting ``target_mse``, or the least distortion within ``max_bits`` per element."""
    if (target_mse is None) == (max_bits is None):
        raise ValueError("give exactly one of target_mse and max_bits")
    if target_mse is not None:
        ok = [p for p in points if p["mse"] <= target_mse]
        return min(ok, key=lambda p: (p["bits_per_element"], p["mse"])) if ok else None
    ok = [p for p in points if p["bits_per_element"] <= max_bits]
    return min(ok, key=lambda p: (p["mse"], p["bits_per_element"])) if ok else None
