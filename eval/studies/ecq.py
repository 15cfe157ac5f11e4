"""Figs. 4-6 of the paper: the uniform quantizer against conventional (Algorithm 1) and modified (Algorithm 2)
entropy-constrained quantizers over λ, optionally beside HEVC and with RDO encoding."""

from __future__ import annotations

import splitcodec as sc

from eval.core import options, report
from eval.core.evaluate import OperatingPoint, designed_point, evaluate, uniform_point
from eval.core.studies import document, encoder_variants, parse_clips, sample_sets
from eval.core.entry import Entry

ENTRY = Entry("ecq", "study", "Figs. 4-6: uniform vs conventional and modified ECQ over λ")
write_csv, plot = report.write_csv, report.plot  # a row per operating point


def add_arguments(s) -> None:
    options.add_dataset_arguments(s, levels=[2, 3, 4])
    s.add_argument("--lams", type=options.floats, help="λ values (default: 6 scaled to the data)")
    s.add_argument("--clip", default="auto")
    s.add_argument("--context", default="spatial")
    s.add_argument("--hevc", type=options.ints, default=[], help="also HEVC at these qualities")
    s.add_argument("--rdo-lambda", type=options.floats, default=[],
                   help="also every uniform and ECQ point encoded with these RDO λ")


def run(args) -> dict:
    return ecq(options.open_study_cache(args), levels=args.levels, lams=args.lams, clip=args.clip, context=args.context,
               shard=args.shard, exclude_calib=args.exclude_calib, hevc_qualities=args.hevc,
               rdo_lambdas=args.rdo_lambda, calib=args.calib, device=options.device_of(args))


def ecq(cache, *, levels=(2, 3, 4), lams=None, clip=None, context="spatial", calib=100, shard=None,
        exclude_calib=False, hevc_qualities=(), device="cpu", rdo_lambdas=()):
    """Figs. 4-6: accuracy vs bits/element for uniform, conventional ECQ (Alg. 1) and
    modified ECQ (Alg. 2), quantizers designed on the calibration samples; with ``rdo_lambdas``
    every one of them again encoded with each RDO λ (the exact adaptive rate beside ECQ's static one)."""
    calib_idx, eval_idx = sample_sets(cache, calib, shard, exclude_calib)
    cache.build(calib_idx + eval_idx)
    feats = cache.features(calib_idx)
    clips = parse_clips(clip, list(levels), feats)
    points = []
    for n in levels:
        points.append(uniform_point(n, clips[n], context))
        grid = lams if lams is not None else sc.quantization.default_lambdas(feats, *clips[n], count=6)
        for lam in grid:
            for method in ("ecq-conventional", "ecq-modified"):
                points.append(designed_point(method, feats, n, clips[n], float(lam), context))
    points += encoder_variants(points, rdo_lambdas)
    points += [OperatingPoint("hevc", quality=int(q)) for q in hevc_qualities]
    accs = evaluate(cache, points, eval_idx, device=device)
    return document("ecq", cache, points, accs, calib_idx, eval_idx, shard)
