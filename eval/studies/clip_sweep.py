"""Fig. 2 of the paper: accuracy and quantization MSE against c_max for several N (c_min = 0)."""

from __future__ import annotations

import numpy as np

from eval.core import options, report
from eval.core.evaluate import evaluate, uniform_point
from eval.core.studies import clip_optima, document, sample_sets
from eval.core.entry import Entry

ENTRY = Entry("clip-sweep", "study", "Fig. 2: accuracy and MSQE against c_max")
write_csv, plot = report.write_csv, report.plot  # a row per operating point


def add_arguments(s) -> None:
    options.add_dataset_arguments(s, levels=[2, 4, 8])
    s.add_argument("--cmax", help="LO:HI:COUNT (default: quantiles of the calibration activations)")
    s.add_argument("--points", type=int, default=16)


def run(args) -> dict:
    return clip_sweep(options.open_study_cache(args), levels=args.levels, cmax=args.cmax, points_per_level=args.points,
                      shard=args.shard, exclude_calib=args.exclude_calib, calib=args.calib,
                      device=options.device_of(args))


def clip_sweep(cache, *, levels, cmax=None, points_per_level=16, calib=100, shard=None, exclude_calib=False,
               device="cpu"):
    """Fig. 2: accuracy and MSQE against c_max for several N (c_min = 0)."""
    calib_idx, eval_idx = sample_sets(cache, calib, shard, exclude_calib)
    cache.build(calib_idx + eval_idx)
    feats = cache.features(calib_idx)
    if cmax:
        lo, hi, k = cmax.split(":")
        grid = np.linspace(float(lo), float(hi), int(k))
    else:
        pos = feats[feats > 0]
        grid = np.quantile(pos, np.linspace(0.5, 1.0, points_per_level)) if pos.size else np.linspace(0.1, 1, 4)
    grid = sorted({float(np.float16(c)) for c in grid if c > 0})
    points = [uniform_point(n, (0.0, c), encode=False) for n in levels for c in grid]
    accs = evaluate(cache, points, eval_idx, device=device)
    doc = document("clip-sweep", cache, points, accs, calib_idx, eval_idx, shard)
    doc["optima"] = clip_optima(doc["rows"][1:])
    return doc
