"""Tables 1-3 of the paper: the float baseline and one row per operating point (quantizer × N × clip × context
model), and with --rdo-lambda / --error-feedback / --task-weights every point again with those encoder options."""

from __future__ import annotations

import json

import splitcodec as sc

from eval.core import options, report
from eval.core.evaluate import OperatingPoint, designed_point, evaluate, uniform_point
from eval.core.studies import (default_lambda, document, encoder_family, encoder_savings, encoder_variants,
                               parse_clips, sample_sets)
from eval.core.entry import Entry

ENTRY = Entry("rate-accuracy", "study", "Tables 1-3: float baseline and one row per operating point")
write_csv, plot = report.write_csv, report.plot  # a row per operating point


def add_arguments(s) -> None:
    options.add_dataset_arguments(s, levels=[16, 8, 7, 6, 5, 4, 3, 2])
    s.add_argument("--clip", default="auto", help="auto | C_MAX | C_MIN:C_MAX | one C_MIN:C_MAX per N")
    s.add_argument("--context", default="spatial", help="spatial,paper")
    s.add_argument("--quantizer", default="uniform", help="uniform,ecq-modified,ecq-conventional,lloyd-max")
    s.add_argument("--lam", type=float, help="λ for ECQ quantizers (default: scaled to the data)")
    s.add_argument("--grid", help="JSON file: a list of operating points {method, levels, clip, context_model, lambda, "
                                  "rdo_lambda, error_feedback, error_diffusion}")
    s.add_argument("--rdo-lambda", type=options.floats, default=[],
                   help="also each point encoded rate-distortion optimised with these λ (comma-separated)")
    s.add_argument("--error-feedback", type=options.floats, default=[],
                   help="also each point encoded with these error-feedback gains in [0, 1] (with every --rdo-lambda)")
    s.add_argument("--error-diffusion", type=options.diffusions, default=["row"],
                   help="where the error feedback goes: 'row', 'plane' (half right, half below) or 'row,plane'")
    s.add_argument("--task-weights", type=float, default=None, metavar="POWER",
                   help="also the RDO points with channel weights = (sensitivity of the network behind the split, "
                        "fitted on the calibration samples) ** POWER")


def run(args) -> dict:
    grid = json.loads(open(args.grid).read()) if args.grid else None
    return rate_accuracy(options.open_study_cache(args), levels=args.levels, clip=args.clip,
                         contexts=args.context.split(","), quantizers=args.quantizer.split(","), lam=args.lam,
                         shard=args.shard, exclude_calib=args.exclude_calib, grid=grid, rdo_lambdas=args.rdo_lambda,
                         error_feedbacks=args.error_feedback, task_weights=args.task_weights,
                         diffusions=args.error_diffusion, calib=args.calib, device=options.device_of(args))


def _grid_points(grid, calib_feats) -> list[OperatingPoint]:
    points = []
    for g in grid:
        n = int(g["levels"])
        c = tuple(g.get("clip") or (0.0, sc.mse_optimal_clip(calib_feats, n)))
        method = g.get("method", "uniform")
        ctx = g.get("context_model", "spatial")
        p = (uniform_point(n, c, ctx) if method == "uniform"
             else designed_point(method, calib_feats, n, c, g.get("lambda", 0.0), ctx))
        points.append(p.with_encoder(**{k: g[k] for k in ("rdo_lambda", "error_feedback", "error_diffusion") if k in g}))
    return points


def rate_accuracy(cache, *, levels, clip=None, contexts=("spatial",), quantizers=("uniform",), lam=None,
                  calib=100, shard=None, exclude_calib=False, device="cpu", grid=None, rdo_lambdas=(),
                  error_feedbacks=(), task_weights=None, diffusions=("row",)):
    """Tables 1-3: the float baseline and one row per operating point; with ``rdo_lambdas`` /
    ``error_feedbacks`` also every point encoded with each combination of those encoder settings (and,
    with ``task_weights`` = p, the RDO ones again with channel weights ``sensitivity ** p`` fitted on the
    calibration samples; the feedback ones with each of ``diffusions``), plus ``encoder_savings``: the bits
    each encoder family needs to reach each plain point's fidelity."""
    calib_idx, eval_idx = sample_sets(cache, calib, shard, exclude_calib)
    cache.build(calib_idx + eval_idx)
    calib_feats = cache.features(calib_idx)
    if grid:
        points = _grid_points(grid, calib_feats)
    else:
        points: list[OperatingPoint] = []
        clips = parse_clips(clip, levels, calib_feats)
        for n in levels:
            for method in quantizers:
                for ctx in contexts:
                    if method == "uniform":
                        points.append(uniform_point(n, clips[n], ctx))
                    else:
                        l = lam if lam is not None else default_lambda(calib_feats, clips[n])
                        points.append(designed_point(method, calib_feats, n, clips[n], l, ctx))
        weights = None
        if task_weights is not None and any(r > 0 for r in rdo_lambdas):
            weights = sc.sensitivity.channel_sensitivity(cache.split.tail, calib_feats, power=task_weights,
                                                         task="classification" if cache.task != "detection" else "output")
        points += encoder_variants(points, rdo_lambdas, error_feedbacks, weights, task_weights, diffusions)
    accs = evaluate(cache, points, eval_idx, device=device)
    doc = document("rate-accuracy", cache, points, accs, calib_idx, eval_idx, shard)
    if len(doc["rows"]) > 1 and any(encoder_family(r) != "plain" for r in doc["rows"][1:]):
        doc["encoder_savings"] = encoder_savings(doc["rows"][1:], cache.task)
    return doc
