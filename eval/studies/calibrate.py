"""Choose the clip range for N levels on the calibration samples (MSE-optimal, or the most faithful candidate
— with --rdo-lambda the RDO λ too) and save a quantizer file the apps load."""

from __future__ import annotations

import splitcodec as sc

from eval.core import options
from eval.core.evaluate import accuracy_key, uniform_point
from eval.core.studies import save_quantizer_file, score_on
from eval.core.entry import Entry

ENTRY = Entry("calibrate", "study", "choose the clip range for N levels and save a quantizer file")


def add_arguments(s) -> None:
    options.add_dataset_arguments(s, shardable=False)
    s.add_argument("--levels", type=int, required=True)
    s.add_argument("--method", default="mse", choices=["mse", "accuracy"])
    s.add_argument("--context", default="spatial")
    s.add_argument("--rdo-lambda", type=options.floats, default=[],
                   help="with --method accuracy: also these RDO λ, searched together with the clip")
    s.add_argument("--save", help="quantizer file to write (default quantizer-MODEL-N.json)")


def run(args) -> dict:
    cache = options.open_study_cache(args)
    doc = calibrate(cache, levels=args.levels, method=args.method, context=args.context, rdo_lambdas=args.rdo_lambda,
                    calib=args.calib, device=options.device_of(args))
    doc["quantizer_file"] = save_quantizer_file(args.save, doc, cache, ENTRY.name)
    return doc


def calibrate(cache, *, levels, method="mse", context="spatial", calib=100, device="cpu", rdo_lambdas=()):
    """Choose the clip range for N levels on the calibration samples (MSE-optimal,
    or the candidate with the best accuracy — with ``rdo_lambdas``, the RDO λ too), and
    describe the quantizer."""
    if rdo_lambdas and method != "accuracy":
        raise ValueError("--rdo-lambda is searched with --method accuracy (an MSE-optimal clip has no λ to choose)")
    calib_idx = list(range(min(calib, cache.n)))
    cache.build(calib_idx)
    feats = cache.features(calib_idx)
    lo = sc.clip.low_clip(feats)
    if method == "mse":
        clip = (lo, sc.mse_optimal_clip(feats, levels, lo))
        candidates = [{"clip": list(clip)}]
    elif method == "accuracy":
        cands = [(c, float(r)) for c in sc.clip.clip_candidates(feats, levels, lo) for r in sorted({0.0, *rdo_lambdas})]
        pts = [uniform_point(levels, (lo, c), context, rdo_lambda=r) for c, r in cands]
        scores = score_on(cache, pts, calib_idx, device)[1:]
        candidates = [{"clip": [lo, c], "rdo_lambda": r, **s} for (c, r), s in zip(cands, scores)]
        # the most faithful; among equals the smaller clip, then the larger λ (fewer bits)
        best = max(candidates, key=lambda r: (accuracy_key(r), -r["clip"][1], r["rdo_lambda"]))
        clip, rdo_lambda = tuple(best["clip"]), best["rdo_lambda"]
    else:
        raise ValueError("method must be 'mse' or 'accuracy'")
    if method == "mse":
        rdo_lambda = 0.0
    p = uniform_point(levels, clip, context, rdo_lambda=rdo_lambda)
    metrics = score_on(cache, [p], calib_idx, device)
    return {"study": "calibrate", "model": cache.split.name, "split": cache.split.split, "levels": levels,
            "method": method, "clip": list(clip), "rdo_lambda": rdo_lambda, "context_model": context,
            "quantizer": p.quantizer, "encoder": p.encoder,
            "calibration_samples": len(calib_idx), "dataset": cache.dataset.identity(),
            "float": metrics[0], "calibration_metrics": metrics[1], "candidates": candidates}
