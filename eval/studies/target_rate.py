"""The most faithful operating point within a bits/element budget (N, clip and, with --rdo-lambda /
--error-feedback, the encoder options searched together), saved as a quantizer file."""

from __future__ import annotations

import splitcodec as sc

from eval.core import options, report
from eval.core.common import log
from eval.core.evaluate import accuracy_key, designed_point, uniform_point
from eval.core.studies import save_quantizer_file, encoder_variants, sample_sets, score_on
from eval.core.entry import Entry

ENTRY = Entry("target-rate", "study", "best accuracy within a bits/element budget")
write_csv = report.write_csv  # the candidates, one row each


def add_arguments(s) -> None:
    options.add_dataset_arguments(s, shardable=False, levels=[2, 3, 4, 5, 6, 8, 12, 16])
    s.add_argument("--budget", type=float, required=True, help="bits per element")
    s.add_argument("--with-ecq", action="store_true", help="also consider modified-ECQ quantizers")
    s.add_argument("--context", default="spatial")
    s.add_argument("--rdo-lambda", type=options.floats, default=[],
                   help="also every candidate encoded with these RDO λ (searched together with N and clip)")
    s.add_argument("--error-feedback", type=options.floats, default=[],
                   help="also every candidate encoded with these error-feedback gains in [0, 1] (with every "
                        "--rdo-lambda; searched together with N and clip)")
    s.add_argument("--error-diffusion", type=options.diffusions, default=["row"],
                   help="where the error feedback goes: 'row', 'plane' (half right, half below) or 'row,plane'")
    s.add_argument("--save", help="quantizer file to write")


def run(args) -> dict:
    cache = options.open_study_cache(args)
    doc = target_rate(cache, budget=args.budget, levels=args.levels, with_ecq=args.with_ecq, context=args.context,
                      exclude_calib=args.exclude_calib, rdo_lambdas=args.rdo_lambda,
                      error_feedbacks=args.error_feedback, diffusions=args.error_diffusion, calib=args.calib,
                      device=options.device_of(args))
    doc["quantizer_file"] = save_quantizer_file(args.save, doc, cache, ENTRY.name)
    return doc


def target_rate(cache, *, budget, levels=(2, 3, 4, 5, 6, 8, 12, 16), with_ecq=False, context="spatial",
                calib=100, exclude_calib=False, device="cpu", rdo_lambdas=(), error_feedbacks=(), diffusions=("row",)):
    """Best accuracy on the calibration samples within a bits/element budget (N, clip and, with
    ``rdo_lambdas`` / ``error_feedbacks``, the RDO λ and the error-feedback gain searched together; ties
    go to the smaller KL divergence); the chosen point is then measured on the evaluation samples."""
    calib_idx, eval_idx = sample_sets(cache, calib, None, exclude_calib)
    cache.build(calib_idx + eval_idx)
    feats = cache.features(calib_idx)
    points = []
    for n in levels:
        for c in sc.clip.clip_candidates(feats, n):
            points.append(uniform_point(n, (0.0, c), context))
            if with_ecq:
                for lam in sc.quantization.default_lambdas(feats, 0.0, c, count=4):
                    points.append(designed_point("ecq-modified", feats, n, (0.0, c), float(lam), context))
    points += encoder_variants(points, rdo_lambdas, error_feedbacks, diffusions=diffusions)
    scores = score_on(cache, points, calib_idx, device)
    rows = [{**p.describe(), **s} for p, s in zip(points, scores[1:])]
    within = [(r, p) for r, p in zip(rows, points) if r["bits_per_element"] <= budget]
    if not within:
        cheapest = min(rows, key=lambda r: r["bits_per_element"])
        raise ValueError(f"no candidate fits {budget} bits/element; the cheapest needs "
                         f"{cheapest['bits_per_element']:.3f} (N = {cheapest['levels']})")
    chosen_row, chosen = max(within, key=lambda rp: target_key(rp[0]))
    achieved = score_on(cache, [chosen], eval_idx, device)
    e = chosen.encoder
    log(f"chosen N={chosen.levels} clip={chosen.clip} {e!r}: {achieved[1]}")
    return {"study": "target-rate", "model": cache.split.name, "split": cache.split.split, "budget": budget,
            "chosen": chosen_row, "rdo_lambda": e.rdo_lambda, "error_feedback": e.error_feedback,
            "error_diffusion": e.error_diffusion,
            "quantizer": chosen.quantizer, "encoder": e, "achieved": achieved[1], "float": achieved[0],
            "evaluated_samples": len(eval_idx), "calibration_samples": len(calib_idx), "candidates": rows}


def target_key(row: dict) -> tuple:
    """Order of candidates within a budget: accuracy, then (classifiers) the smaller KL divergence — top-1 on a
    few calibration samples ties often, KL moves with every error — then fewer bits."""
    kl = row.get("kl")
    return accuracy_key(row), -kl if kl is not None else 0.0, -row["bits_per_element"]
